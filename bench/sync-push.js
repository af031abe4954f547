// k6: POST /sync/{appId} with batches of BATCH changes from VUS clients over many users.
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKENS=tokens.json -e BATCH=10 -e VUS=32 bench/sync-push.js
import http from 'k6/http';
import { check } from 'k6';

const tokens = JSON.parse(open(__ENV.TOKENS));
const batch = parseInt(__ENV.BATCH || '1');

export const options = {
  vus: parseInt(__ENV.VUS || '1'),
  duration: __ENV.DURATION || '10s',
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  // Thresholds: no failures, and p99 within a generous bound for this 2-core machine.
  thresholds: { http_req_failed: ['rate<0.001'], checks: ['rate>0.999'], http_req_duration: ['p(99)<2000'] },
};

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
  });
  check(res, { 'status 200': (r) => r.status === 200 });
}
