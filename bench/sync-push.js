// k6: POST /sync/{appId} with batches of BATCH changes from VUS clients over many users.
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKENS=tokens.json -e BATCH=10 -e VUS=32 bench/sync-push.js
import http from 'k6/http';
import { expectOK, lean, loadOptions } from './k6-options.js';

const tokens = JSON.parse(open(__ENV.TOKENS));
const batch = parseInt(__ENV.BATCH || '1');

export const options = loadOptions(2000);

const url = `${__ENV.BASE}/sync/bench`;
// Each user's request options, built once (responseType 'none': only the status is checked,
// k6 keeps no copy of the body).
const params = tokens.map((token) => ({
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  responseType: 'none',
}));

// The changes' JSON text, built once and cut where each record id's per-push prefix goes:
// each push joins its prefix in with one native call instead of building BATCH objects and
// stringifying them in JavaScript, which cost k6 about 1 ms of CPU per 100-change push on the
// cores the service shares (docs/benchmarks.md, session 39). The bytes are JSON.stringify's.
const MARK = '\u0000';
const pieces = JSON.stringify(Array.from({ length: batch }, (_, i) =>
  ({ table: 'items', id: `${MARK}${i}`, op: 'insert', data: { n: i, text: 'benchmark row' } })))
  .split(JSON.stringify(MARK).slice(1, -1));

function pushBody(since) {
  const prefix = `${__VU}-${__ITER}-`;
  if (lean) {
    return `{"clientId":"vu-${__VU}","since":"${since}","changes":${pieces.join(prefix)}}`;
  }
  const changes = [];
  for (let i = 0; i < batch; i++) {
    changes.push({ table: 'items', id: `${prefix}${i}`, op: 'insert', data: { n: i, text: 'benchmark row' } });
  }
  return JSON.stringify({ clientId: `vu-${__VU}`, since, changes });
}

export default function () {
  const user = (__VU * 7919 + __ITER) % tokens.length;
  // `since` = now keeps the answer small: the benchmark measures storing, not catching up.
  const body = pushBody(new Date().toISOString());
  if (lean) {
    expectOK(http.post(url, body, params[user]));
    return;
  }
  expectOK(http.post(`${__ENV.BASE}/sync/bench`, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[user]}` },
    responseType: 'none',
  }));
}
