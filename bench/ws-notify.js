// k6: time from a push to `sync-available` on another connection of the same user.
// Each VU is one user: a WebSocket listener, and a push from another client every time the
// previous notice arrived (so pushes never overlap per user).
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKENS=tokens.json -e VUS=4 -e PUSHES=100 bench/ws-notify.js
import http from 'k6/http';
import { WebSocket } from 'k6/experimental/websockets';
import { Trend, Counter } from 'k6/metrics';

const tokens = JSON.parse(open(__ENV.TOKENS));
const pushes = parseInt(__ENV.PUSHES || '100');
const pushToNotice = new Trend('push_to_notice', true);
const notices = new Counter('notices');

export const options = {
  vus: parseInt(__ENV.VUS || '4'),
  iterations: parseInt(__ENV.VUS || '4'),
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  thresholds: { push_to_notice: ['p(99)<1000'], notices: [`count>=${pushes * parseInt(__ENV.VUS || '4')}`] },
};

export default function () {
  const token = tokens[(__VU - 1) % tokens.length];
  const ws = new WebSocket(`${__ENV.BASE.replace('http', 'ws')}/ws`);
  let sentAt = 0;
  let count = 0;
  const push = () => {
    sentAt = Date.now();
    const body = JSON.stringify({ clientId: 'pusher', since: new Date().toISOString(),
      changes: [{ table: 'items', id: `n-${__VU}-${count}`, op: 'insert', data: { n: count } }] });
    http.asyncRequest('POST', `${__ENV.BASE}/sync/bench`, body,
      { headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } });
  };
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token, clientId: 'listener' }));
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === 'sync-available') {
      pushToNotice.add(Date.now() - sentAt);
      notices.add(1);
      count += 1;
    }
    if (message.type === 'auth-ok' || message.type === 'sync-available') {
      if (count >= pushes) { ws.close(); return; }
      push();
    }
  };
}
