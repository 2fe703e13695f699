// Runs an ONNX model in onnxruntime-node: node ort_run.js MODEL INPUT.f32 N,C,H,W OUT.f32
// INPUT.f32 holds the float32 input (little-endian); the logits are written to OUT.f32
// and their dims printed as JSON. Used by vggo's -tags onnxruntime test (onnx/ort_test.go).
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, dims, out] = process.argv.slice(2);
  const buf = fs.readFileSync(input);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2 });
  const shape = dims.split(',').map(Number);
  const result = await session.run({ input: new ort.Tensor('float32', data, shape) });
  const logits = result.logits;
  fs.writeFileSync(out, Buffer.from(logits.data.buffer, logits.data.byteOffset, logits.data.byteLength));
  console.log(JSON.stringify({ dims: logits.dims, inputs: session.inputNames, outputs: session.outputNames }));
}

main().catch((e) => {
  console.error(e && e.message ? e.message : e);
  process.exit(1);
});
