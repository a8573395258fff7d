// Layer normalisation over the last axis (Keras LayerNormalization(axis=-1), PyTorch LayerNorm
// over the last dimension): y = (x − mean)/√(var + ε)·γ + β with the biased variance of each
// row. One forward dispatch (saves mean and 1/σ per row); backward, one dispatch for dx and two
// column sums for dγ and dβ.
import { formatShape, Tensor } from "../tensor.ts";
import { noGrad, recorder, type Rules } from "../autograd.ts";
import { runtime } from "../runtime.ts";
import { grid1d } from "../shaders/common.ts";
import { LAYER_NORM_BACKWARD, LAYER_NORM_FORWARD } from "../shaders/layernorm.ts";
import { sum } from "./reduce.ts";

interface LayerNormAttrs {
  layer_norm: { epsilon: number };
}

export interface LayerNormOptions {
  /** Added to the variance: Keras' default 1e-3 (PyTorch uses 1e-5). */
  epsilon?: number;
}

/** x [..., C], γ and β [C] → [..., C], normalised over the last axis. */
export function layerNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor,
  options: LayerNormOptions = {},
): Tensor {
  const { epsilon = 1e-3 } = options;
  for (const t of [x, gamma, beta]) t.assertAlive("layerNorm");
  const c = x.shape[x.rank - 1];
  const fits = x.rank >= 1 && c > 0 && x.dtype === "f32" &&
    [gamma, beta].every((t) => t.dtype === "f32" && t.rank === 1 && t.shape[0] === c);
  if (!fits) {
    throw new Error(
      `layerNorm: x ${formatShape(x.shape)} ${x.dtype}, gamma ${formatShape(gamma.shape)}, ` +
        `beta ${formatShape(beta.shape)}; expected f32 x [..., C] with C ≥ 1 and gamma, beta [C]`,
    );
  }
  if (!(epsilon > 0)) throw new Error(`layerNorm: epsilon ${epsilon}, expected > 0`);
  const rows = x.size / c;
  const y = Tensor.empty(x.shape);
  const stats = Tensor.empty([rows, 2]);
  if (rows > 0) {
    const groups = grid1d(rows);
    runtime().launch(LAYER_NORM_FORWARD, {
      buffers: [x.storage, gamma.storage, beta.storage, y.storage, stats.storage],
      params: { rows, c, gx: groups[0], eps: epsilon },
      groups,
      flops: 8 * x.size,
      outputs: [y],
      op: "layer_norm",
    });
  }
  record("layer_norm", y, [x, gamma, beta], [x, gamma, stats], { epsilon });
  stats.dispose();
  return y;
}

const layerNormRules: Rules<LayerNormAttrs> = {
  layer_norm: (grad, node) => {
    const [x, gamma, stats] = node.saved;
    const c = gamma.shape[0];
    const rows = x.size / c;
    const dx = Tensor.empty(x.shape);
    const dyxhat = Tensor.empty([rows, c]);
    const groups = grid1d(rows);
    runtime().launch(LAYER_NORM_BACKWARD, {
      buffers: [x.storage, gamma.storage, stats.storage, grad.storage, dx.storage, dyxhat.storage],
      params: { rows, c, gx: groups[0], eps: node.attrs.epsilon },
      groups,
      flops: 12 * x.size,
    });
    const dgamma = noGrad(() => sum(dyxhat, 0));
    dyxhat.dispose();
    const dy = grad.reshape([rows, c]);
    const dbeta = noGrad(() => sum(dy, 0));
    dy.dispose();
    return [dx, dgamma, dbeta];
  },
};
const record = recorder(layerNormRules);
