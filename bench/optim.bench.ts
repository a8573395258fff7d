// Adam step bandwidth: each step reads w, g, m, v and writes w, m, v (7 × 4 bytes per element).
import { type Shape, sizeOf, Tensor } from "../engine/tensor.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { benchKernel } from "./lib/kernel.ts";
import { adamWork } from "./lib/work.ts";

const CASES: Record<string, Shape[]> = {
  "TP1 MLP (784×512, 512, 512×10, 10)": [[784, 512], [512], [512, 10], [10]],
  "one 4M-element parameter": [[4 * 1024 * 1024]],
};

for (const [label, shapes] of Object.entries(CASES)) {
  const elements = shapes.reduce((n, s) => n + sizeOf(s), 0);
  benchKernel({
    kernel: "adam step",
    variant: label,
    shape: `${elements} elements`,
    work: adamWork(elements),
    setup: () => {
      const params = shapes.map((s) => Tensor.uniform(s, -0.1, 0.1).requireGrad().keep());
      for (const p of params) p.grad = Tensor.uniform(p.shape, -1, 1).keep();
      const opt = new Adam(params);
      return () => opt.step();
    },
  });
}
