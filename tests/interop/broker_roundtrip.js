'use strict';
// Sends COUNT messages through an Apogee broker with npm `ali-ons` (pure JavaScript), then
// consumes them with an ali-ons push consumer in a new group.
// Usage: node broker_roundtrip.js NAMESRV_ADDR TOPIC COUNT
// Prints one JSON line {"sent": [...], "received": [...]}; exits 1 on any error.

const { Producer, Consumer, Message } = require('ali-ons');

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

  const consumer = new Consumer({
    httpclient, logger, nameSrv, consumerGroup: 'GID_apogee_js', persistent: true,
  });
  const received = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} received`)), 40000);
    consumer.subscribe(topic, '*', async msg => {
      received.push({ body: msg.body.toString(), tags: msg.tags, keys: msg.keys, queueId: msg.queueId });
      if (received.length >= count) {
        clearTimeout(timer);
        resolve();
      }
    });
    consumer.on('error', err => console.error('consumer error', err && err.message));
  });
  await consumer.ready();
  await done;
  await consumer.close();
  console.log(JSON.stringify({ sent, received }));
}

main().then(() => process.exit(0), err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
