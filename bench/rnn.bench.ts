// Recurrent layers at the peer measurement's shape (TF.js on this adapter: LSTM train step
// 714 ms WebGPU / 108 ms wasm, GRU 794 / 91 ms, forward 225–270 / 8–10 ms): batch 32, 50 steps,
// 1 input feature, 64 units, then Dense(1) and an MSE loss; Adam updates. Each case runs in both
// launch modes: the whole recurrence as one workgroup-persistent dispatch (the default at this
// size), and one dispatch per time step over a grid of tiles.
import { Tensor, tidy } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import { noGrad } from "../engine/autograd.ts";
import { mse } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Linear } from "../engine/nn/linear.ts";
import { GRU, LSTM } from "../engine/nn/rnn.ts";
import { rnnFlops, setRnnMode } from "../engine/ops/rnn.ts";
import { GATES } from "../engine/shaders/rnn_plan.ts";
import { benchKernel } from "./lib/kernel.ts";

const B = 32, T = 50, H = 64, IN = 1;
const SHAPE = `b${B} T${T} in${IN} h${H}`;

for (const [Layer, cell] of [[LSTM, "lstm"], [GRU, "gru"]] as const) {
  // BPTT does the forward's products twice more.
  const forwardFlops = rnnFlops(cell, { batch: B, steps: T, inputs: IN, hidden: H });
  const weightsBytes = 4 * (IN + H + 2) * GATES[cell] * H;
  for (const mode of ["persistent", "tiled"] as const) {
    const build = () => {
      setRnnMode(mode);
      const rng = new Rng(1);
      const x = Tensor.uniform([B, T, IN], -1, 1, rng).keep();
      const y = Tensor.uniform([B, 1], -1, 1, rng).keep();
      const rnn = new Layer(IN, H, { rng });
      const head = new Linear(H, 1, { rng });
      const opt = new Adam([...rnn.parameters(), ...head.parameters()]);
      return { x, y, rnn, head, opt };
    };
    benchKernel({
      kernel: Layer.name,
      variant: `forward ${mode}`,
      shape: SHAPE,
      work: { flops: forwardFlops, bytes: 4 * B * T * (IN + H) + weightsBytes },
      setup: () => {
        const { x, rnn, head } = build();
        return () => {
          setRnnMode(mode);
          tidy(() => void noGrad(() => head.forward(rnn.forward(x))));
        };
      },
    });
    benchKernel({
      kernel: Layer.name,
      variant: `train step ${mode}`,
      shape: SHAPE,
      work: { flops: 3 * forwardFlops, bytes: 3 * (4 * B * T * (IN + H)) + 4 * weightsBytes },
      setup: () => {
        const { x, y, rnn, head, opt } = build();
        return () => {
          setRnnMode(mode);
          tidy(() => {
            const loss = mse(head.forward(rnn.forward(x)), y);
            opt.zeroGrad();
            loss.backward();
            opt.step();
          });
        };
      },
    });
  }
}
