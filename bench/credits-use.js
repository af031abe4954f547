// k6: POST /api/v1/credits/use (1 credit) from VUS clients, over many users or one hot user.
//   k6 run -e BASE=http://127.0.0.1:3261 -e TOKENS=tokens.json -e VUS=32 bench/credits-use.js
import http from 'k6/http';
import { expectOK, lean, loadOptions } from './k6-options.js';

const tokens = JSON.parse(open(__ENV.TOKENS));

export const options = loadOptions(2000);

const url = `${__ENV.BASE}/api/v1/credits/use`;
const body = JSON.stringify({ amount: 1, appId: 'bench', description: 'bench use' });
// Each user's request options, built once (responseType 'none': only the status is checked,
// k6 keeps no copy of the body).
const params = tokens.map((token) => ({
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  responseType: 'none',
}));

export default function () {
  const user = (__VU * 7919 + __ITER) % tokens.length;
  if (lean) {
    expectOK(http.post(url, body, params[user]));
    return;
  }
  expectOK(http.post(`${__ENV.BASE}/api/v1/credits/use`, JSON.stringify({ amount: 1, appId: 'bench', description: 'bench use' }), {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[user]}` },
    responseType: 'none',
  }));
}
