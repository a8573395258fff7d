// Elementwise bandwidth: binary ops (same shape, row broadcast, scalar), unary ops from cheap to
// transcendental, where(), and one tiny op where the dispatch cost is all there is. Inputs
// rotate through enough copies that no cache holds them.
import { Tensor } from "../engine/tensor.ts";
import { add, exp, gelu, greater, mul, relu, where } from "../engine/ops/elementwise.ts";
import { benchKernel, inputSets } from "./lib/kernel.ts";
import { elementwiseWork } from "./lib/work.ts";

const N = 4 * 2 ** 20;
const [ROWS, COLS] = [2048, 2048];
const F32 = 4;

const random = (shape: number[]) => Tensor.uniform(shape, -2, 2).keep();

for (const n of [1024, N]) {
  benchKernel({
    kernel: "add",
    shape: `[${n}] + [${n}]`,
    work: elementwiseWork(n, 2 * n, 1),
    setup: () => {
      const sets = inputSets(3 * F32 * n, () => [random([n]), random([n])]);
      return (rep) => {
        const [a, b] = sets[rep % sets.length];
        add(a, b).dispose();
      };
    },
  });
}

benchKernel({
  kernel: "add",
  variant: "row broadcast",
  shape: `[${ROWS}, ${COLS}] + [${COLS}]`,
  work: elementwiseWork(ROWS * COLS, ROWS * COLS + COLS, 1),
  setup: () => {
    const sets = inputSets(2 * F32 * ROWS * COLS, () => [random([ROWS, COLS]), random([COLS])]);
    return (rep) => {
      const [a, b] = sets[rep % sets.length];
      add(a, b).dispose();
    };
  },
});

const UNARY = { "mul scalar": (x: Tensor) => mul(x, 1.5), relu, exp, gelu };
for (const [kernel, op] of Object.entries(UNARY)) {
  benchKernel({
    kernel,
    shape: `[${N}]`,
    work: elementwiseWork(N, N, kernel === "mul scalar" ? 1 : 0),
    setup: () => {
      const sets = inputSets(2 * F32 * N, () => random([N]));
      return (rep) => op(sets[rep % sets.length]).dispose();
    },
  });
}

benchKernel({
  kernel: "where",
  shape: `[${N}] ? [${N}] : [${N}]`,
  work: elementwiseWork(N, 3 * N),
  setup: () => {
    // A random 0/1 mask: half the lanes take each side.
    const sets = inputSets(
      4 * F32 * N,
      () => [greater(random([N]), 0).keep(), random([N]), random([N])],
    );
    return (rep) => {
      const [cond, a, b] = sets[rep % sets.length];
      where(cond, a, b).dispose();
    };
  },
});
