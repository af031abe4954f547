// k6: GET /health from VUS clients: the cost of an HTTP request through the service's chassis
// (router, middleware, metrics) without PostgreSQL, to set beside the hot paths' CPU.
//   k6 run -e BASE=http://127.0.0.1:3250 -e VUS=32 bench/health.js
import http from 'k6/http';
import { expectOK, loadOptions } from './k6-options.js';

export const options = loadOptions(2000);

const url = `${__ENV.BASE}/health`;
const params = { responseType: 'none' };

export default function () {
  expectOK(http.get(url, params));
}
