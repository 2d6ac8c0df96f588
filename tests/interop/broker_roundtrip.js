'use strict';
// Sends COUNT messages through an Apogee broker with npm `ali-ons` (pure JavaScript), then
// consumes them with an ali-ons push consumer in a new group.
// Usage: node broker_roundtrip.js NAMESRV_ADDR TOPIC COUNT
// Prints one JSON line {"sent": [...], "received": [...]}; exits 1 on any error.

const { Producer, Message } = require('ali-ons');
const { consume } = require('./cross');

// The HTTP client is only used to look name servers up by URL; these tests name one directly.
const httpclient = { async request() { throw new Error('no HTTP lookups in this test'); } };
const logger = { info() {}, warn() {}, debug() {}, error: console.error };

async function main() {
  const [ nameSrv, topic, countText ] = process.argv.slice(2);
  const count = Number(countText);
  const producer = new Producer({ httpclient, logger, nameSrv, producerGroup: 'PID_apogee_js' });
  await producer.ready();
  const sent = [];
  for (let i = 0; i < count; i++) {
    const msg = new Message(topic, i % 2 === 0 ? 'TagA' : 'TagB', `hello from ali-ons ${i}`);
    msg.keys = [ `key-${i}` ];
    const r = await producer.send(msg);
    sent.push({ status: r.sendStatus, msgId: r.msgId, queueId: r.messageQueue.queueId, queueOffset: r.queueOffset });
  }
  await producer.close();

  const { received } = await consume(nameSrv, topic, count, 'GID_apogee_js');
  console.log(JSON.stringify({ sent, received }));
}

main().then(() => process.exit(0), err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
