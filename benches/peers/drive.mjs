// Load driver for both systems, so both see the same client: one request
// starts a 10-step run and returns its result. Prints one JSON line:
// sequential latencies (p50, p99) and runs/s at concurrency C.
//   node drive.mjs URL TOKEN|- SEQUENTIAL CONCURRENCY PER_CLIENT
import http from "node:http";

const [url, token, seqN, conc, per] = process.argv.slice(2);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) + 1 });

function post(n) {
  const body = target.pathname.startsWith("/api/v1/runs")
    ? JSON.stringify({ playbook: "ten", alert: { n } })
    : JSON.stringify({ n });
  const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
  if (token !== "-") headers.authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname + target.search, method: "POST", headers, agent },
      (res) => {
        let text = "";
        res.on("data", (c) => (text += c));
        res.on("end", () => {
          if (res.statusCode !== 200 || !text.includes("succeeded")) {
            reject(new Error(`${res.statusCode} ${text.slice(0, 300)}`));
          } else resolve();
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

const pct = (v, p) => v[Math.min(v.length - 1, Math.round((v.length - 1) * p))];
for (let i = 0; i < 50; i++) await post(i); // warm-up
const lat = [];
for (let i = 0; i < Number(seqN); i++) {
  const t = process.hrtime.bigint();
  await post(1000 + i);
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
}
lat.sort((a, b) => a - b);
const began = process.hrtime.bigint();
await Promise.all(
  Array.from({ length: Number(conc) }, async (_, c) => {
    for (let i = 0; i < Number(per); i++) await post(100000 + c * Number(per) + i);
  }),
);
const wall = Number(process.hrtime.bigint() - began) / 1e9;
const runs = Number(conc) * Number(per);
console.log(JSON.stringify({ p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), runs, wall_s: wall, runs_per_s: runs / wall }));
agent.destroy();
