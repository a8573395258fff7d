// Recurrent layers at the peer-measurement shape (TF.js on this adapter: LSTM train step 714 ms
// WebGPU / 108 ms wasm, GRU 794 / 91 ms, forward 225–270 / 8–10 ms): batch 32, 50 steps,
// 1 input feature, 64 units, followed by Dense(1) and an MSE loss; Adam updates. Sync inside
// every timed region (an empty submit + wait costs ~11 ms on lavapipe); random inputs; one
// warm-up call per case compiles the pipelines. Each case runs in both launch modes: the whole
// recurrence as one workgroup-persistent dispatch (the default at this size), and one dispatch
// per time step over a grid of tiles.
import { init, Tensor, tidy } from "../engine/tensor.ts";
import { Rng } from "../engine/random.ts";
import { noGrad } from "../engine/autograd.ts";
import { mse } from "../engine/ops/loss.ts";
import { Adam } from "../engine/optim/optimizers.ts";
import { Linear } from "../engine/nn/linear.ts";
import { GRU, LSTM } from "../engine/nn/rnn.ts";
import { setRnnMode } from "../engine/ops/rnn.ts";

const rt = await init();
const B = 32, T = 50, H = 64;
const rng = new Rng(1);
const x = Tensor.uniform([B, T, 1], -1, 1, rng).keep();
const y = Tensor.uniform([B, 1], -1, 1, rng).keep();

function dispatchesOf(fn: () => void): number {
  const before = rt.poolStats().dispatches;
  fn();
  return rt.poolStats().dispatches - before;
}

for (
  const [Layer, mode] of [LSTM, GRU].flatMap((L) => [[L, "persistent"], [L, "tiled"]] as const)
) {
  setRnnMode(mode);
  const rnn = new Layer(1, H, { rng });
  const head = new Linear(H, 1, { rng });
  const opt = new Adam([...rnn.parameters(), ...head.parameters()]);
  const forward = () => tidy(() => void noGrad(() => head.forward(rnn.forward(x))));
  const trainStep = () =>
    tidy(() => {
      const loss = mse(head.forward(rnn.forward(x)), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  trainStep();
  forward();
  await rt.sync();
  const forwardDispatches = dispatchesOf(forward);
  const stepDispatches = dispatchesOf(trainStep);
  await rt.sync();
  const perStep = mode === "persistent" ? "1 per sequence" : "1 per step";
  const name = `${Layer.name}(${H}) b${B} T${T} in1 [${mode}: recurrence ${perStep}]`;

  Deno.bench({
    name: `${name} forward (${forwardDispatches} dispatches)`,
    group: `rnn ${Layer.name}`,
    async fn(b) {
      setRnnMode(mode);
      b.start();
      forward();
      await rt.sync();
      b.end();
    },
  });

  Deno.bench({
    name: `${name} train step: forward + BPTT + Adam (${stepDispatches} dispatches)`,
    group: `rnn ${Layer.name}`,
    async fn(b) {
      setRnnMode(mode);
      b.start();
      trainStep();
      await rt.sync();
      b.end();
    },
  });
}
