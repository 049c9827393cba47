// A TV-to-phone handoff with the JavaScript SDK, in Node 20:
//   node sdk/js/examples/handoff.mjs http://127.0.0.1:8080
import { PlaymarkClient, Player } from '../playmark.js';

const client = new PlaymarkClient({ baseUrl: process.argv[2] ?? 'http://127.0.0.1:8080' });
const key = { account_id: 'acct-123', profile_id: 'A', video_id: 'tears-of-steel' };
const log = (who) => (e) => {
  if (e.kind === 'acked') console.log(`${who}: ${e.event} at ${e.position} s -> ${e.outcome}`);
};

const tv = new Player({ client, key, deviceId: 'tv-livingroom', durationSec: 734, onLog: log('tv') });
const start = await tv.resume();
console.log(`tv: ${start.action} at ${start.position} s (${start.reason})`);
await tv.play(start.position);
for (let s = 1; s <= 95; s++) await tv.tick(s);
await tv.pause(95.5);
await tv.idle();

const phone = new Player({ client, key, deviceId: 'phone-anna', durationSec: 734 });
const here = await phone.resume();
console.log(`phone: ${here.action} at ${here.position} s, watched on ${here.deviceId}`);
