// k6: GET /sync/{appId}/pull pages of 1,000 changes from random cursors of one preloaded user.
//   k6 run -e BASE=... -e TOKEN=<jwt> -e FIRST=<cursor µs> -e COUNT=<changes> -e VUS=32 bench/sync-pull.js
import http from 'k6/http';
import { check } from 'k6';
import { loadOptions } from './k6-options.js';

const first = parseInt(__ENV.FIRST);
const count = parseInt(__ENV.COUNT);

export const options = loadOptions(3000);

function cursor(micros) {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // ...sss Z
  const extra = String(micros % 1000).padStart(3, '0');
  return iso.replace('Z', `${extra}Z`);
}

export default function () {
  const since = cursor(first + Math.floor(Math.random() * (count - 1000)));
  const res = http.get(`${__ENV.BASE}/sync/bench/pull?collection=items&limit=1000&since=${encodeURIComponent(since)}`, {
    headers: { Authorization: `Bearer ${__ENV.TOKEN}` },
  });
  // Parsing a 200 KB page costs k6 more CPU than the service spends serving it, on the same
  // two cores: every 20th page is parsed and counted, the others checked by status and size.
  if (__ITER % 20 === 0) {
    check(res, { 'a full page': (r) => r.status === 200 && r.json('serverChanges').length === 1000 });
  } else {
    check(res, { 'a full page': (r) => r.status === 200 && r.body.length > 100000 });
  }
}
