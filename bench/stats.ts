// What several benches share: the nearest-rank percentile of sorted samples, and the HTTP load
// client they run inside a namespace (`node -e HTTP_LOAD url concurrency seconds`, one JSON line).

/** Nearest rank; NaN for no samples. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** New connections (no keep-alive) for `secs` from `conc` loops; prints {rps, errors}. */
export const HTTP_LOAD = `
const http = require('http');
const [url, conc, secs] = process.argv.slice(1);
let n = 0, errors = 0;
const end = Date.now() + Number(secs) * 1000;
const one = () => new Promise((res) => {
  const r = http.get(url, { agent: false }, (s) => { s.resume(); s.on('end', () => { n++; res(); }); });
  r.on('error', () => { errors++; res(); });
});
(async () => {
  const start = Date.now();
  await Promise.all(Array.from({ length: Number(conc) }, async () => { while (Date.now() < end) await one(); }));
  console.log(JSON.stringify({ rps: n / ((Date.now() - start) / 1000), errors }));
})();
`;
