// k6: GET /health from VUS clients: the cost of an HTTP request through the service's chassis
// (router, middleware, metrics) without PostgreSQL, to set beside the hot paths' CPU.
//   k6 run -e BASE=http://127.0.0.1:3250 -e VUS=32 bench/health.js
import http from 'k6/http';
import { check } from 'k6';
import { loadOptions } from './k6-options.js';

export const options = loadOptions(2000);

export default function () {
  const res = http.get(`${__ENV.BASE}/health`, { responseType: 'none' });
  check(res, { 'status 200': (r) => r.status === 200 });
}
