// Reduction, softmax and cross-entropy bandwidth: GB/s counts the bytes each op must read and
// write at least.
import { Tensor } from "../engine/tensor.ts";
import { noGrad } from "../engine/autograd.ts";
import { softmax, sum } from "../engine/ops/reduce.ts";
import { softmaxCrossEntropy } from "../engine/ops/loss.ts";
import { benchKernel } from "./lib/kernel.ts";
import { reduceWork, softmaxCrossEntropyWork, softmaxWork, type Work } from "./lib/work.ts";

interface Case {
  kernel: string;
  variant?: string;
  shape: string;
  work: Work;
  setup: () => () => void;
}

const CASES: Case[] = [
  {
    kernel: "sum",
    variant: "over rows",
    shape: "[4096, 1024] → [4096]",
    work: reduceWork(4096 * 1024, 4096),
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x, 1).dispose();
    },
  },
  {
    kernel: "sum",
    variant: "over the batch axis",
    shape: "[4096, 1024] → [1024]",
    work: reduceWork(4096 * 1024, 1024),
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x, 0).dispose();
    },
  },
  {
    // A conv layer's bias gradient: dY [N·H·W, C] over its pixels.
    kernel: "sum",
    variant: "over the batch axis",
    shape: "[65536, 32] → [32]",
    work: reduceWork(65536 * 32, 32),
    setup: () => {
      const x = Tensor.uniform([65536, 32]).keep();
      return () => sum(x, 0).dispose();
    },
  },
  {
    kernel: "sum",
    variant: "of all",
    shape: "[4096, 1024] → []",
    work: reduceWork(4096 * 1024, 1),
    setup: () => {
      const x = Tensor.uniform([4096, 1024]).keep();
      return () => sum(x).dispose();
    },
  },
  {
    kernel: "softmax",
    variant: "over the last axis",
    shape: "[4096, 1000]",
    work: softmaxWork(4096 * 1000),
    setup: () => {
      const x = Tensor.uniform([4096, 1000], -5, 5).keep();
      return () => softmax(x).dispose();
    },
  },
  ...[[128, 10], [1024, 1000]].map(([n, c]): Case => ({
    kernel: "softmax cross-entropy",
    variant: "fwd+bwd, class ids",
    shape: `[${n}, ${c}]`,
    work: softmaxCrossEntropyWork(n, c),
    setup: () => {
      const logits = Tensor.uniform([n, c], -3, 3).requireGrad().keep();
      const labels = Tensor.from(
        Array.from({ length: n }, (_, i) => (i * 7) % c),
        [n],
        "i32",
      ).keep();
      return () => {
        const loss = softmaxCrossEntropy(logits, labels);
        loss.backward();
        noGrad(() => loss.dispose());
        logits.grad!.dispose();
        logits.grad = null;
      };
    },
  })),
];

for (const c of CASES) benchKernel(c);
