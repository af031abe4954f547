// k6: POST /api/v1/credits/use (1 credit) from VUS clients, over many users or one hot user.
//   k6 run -e BASE=http://127.0.0.1:3261 -e TOKENS=tokens.json -e VUS=32 bench/credits-use.js
import http from 'k6/http';
import { check } from 'k6';

const tokens = JSON.parse(open(__ENV.TOKENS));

export const options = {
  vus: parseInt(__ENV.VUS || '1'),
  duration: __ENV.DURATION || '10s',
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  thresholds: { http_req_failed: ['rate<0.001'], checks: ['rate>0.999'], http_req_duration: ['p(99)<2000'] },
};

export default function () {
  const token = tokens[(__VU * 7919 + __ITER) % tokens.length];
  const res = http.post(`${__ENV.BASE}/api/v1/credits/use`, JSON.stringify({ amount: 1, appId: 'bench', description: 'bench use' }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  });
  check(res, { 'status 200': (r) => r.status === 200 });
}
