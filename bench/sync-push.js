// k6: POST /sync/{appId} with batches of BATCH changes from VUS clients over many users.
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKENS=tokens.json -e BATCH=10 -e VUS=32 bench/sync-push.js
import http from 'k6/http';
import { check } from 'k6';
import { loadOptions } from './k6-options.js';

const tokens = JSON.parse(open(__ENV.TOKENS));
const batch = parseInt(__ENV.BATCH || '1');

export const options = loadOptions(2000);

export default function () {
  const token = tokens[(__VU * 7919 + __ITER) % tokens.length];
  const changes = [];
  for (let i = 0; i < batch; i++) {
    changes.push({ table: 'items', id: `${__VU}-${__ITER}-${i}`, op: 'insert', data: { n: i, text: 'benchmark row' } });
  }
  // `since` = now keeps the answer small: the benchmark measures storing, not catching up.
  const body = JSON.stringify({ clientId: `vu-${__VU}`, since: new Date().toISOString(), changes });
  const res = http.post(`${__ENV.BASE}/sync/bench`, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    responseType: 'none', // only the status is checked: k6 keeps no copy of the body
  });
  check(res, { 'status 200': (r) => r.status === 200 });
}
