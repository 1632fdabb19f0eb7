// Draw samples from an exported tfgan_mix sampler (BASE/<version>/model.onnx) with onnxruntime-node.
// The model card next to it (sampler.json) says which noise to feed: its inputs' names, shapes
// (batch, candidates, ...) and distributions. Usage: node sample.js VERSION_DIR [ROWS]
// Prints JSON: {rows, accepted, acceptance_rate, samples: [...accepted samples...]}.
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

const DRAW = {
  "uniform(-1, 1)": () => 2 * Math.random() - 1,
  "uniform(0, 1)": () => Math.random(),
  // Box-Muller: two uniforms -> one standard normal.
  "normal(0, 1)": () => Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()),
};

function noiseTensor(input, rows) {
  const shape = [rows, ...input.shape.slice(1)];
  const draw = DRAW[input.distribution];
  if (!draw) throw new Error(`unknown noise distribution ${input.distribution}`);
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, draw);
  return new ort.Tensor("float32", data, shape);
}

async function main() {
  const [versionDir, rowsText = "100"] = process.argv.slice(2);
  if (!versionDir) throw new Error("usage: node sample.js VERSION_DIR [ROWS]");
  const rows = parseInt(rowsText, 10);
  const card = JSON.parse(fs.readFileSync(path.join(versionDir, "sampler.json"), "utf8"));
  const session = await ort.InferenceSession.create(path.join(versionDir, "model.onnx"));
  const feeds = Object.fromEntries(card.noise_inputs.map((input) => [input.name, noiseTensor(input, rows)]));
  const out = await session.run(feeds);
  const width = out.samples.dims.slice(1).reduce((a, b) => a * b, 1);
  const samples = [];
  for (let r = 0; r < rows; r++) {
    if (out.accepted.data[r]) samples.push(Array.from(out.samples.data.slice(r * width, (r + 1) * width)));
  }
  console.log(JSON.stringify({ rows, accepted: samples.length, acceptance_rate: samples.length / rows, samples }));
}

main().catch((error) => {
  console.error(`error: ${error.message}`);
  process.exit(2);
});
