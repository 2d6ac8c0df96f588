'use strict';
// One half of a cross-implementation test with npm `ali-ons` (pure JavaScript): either sends
// COUNT messages, their bodies padded with 'x' to BODY_BYTES when given (ali-ons compresses
// bodies of 4 KiB or more), or consumes COUNT messages in GROUP with a push consumer.
// Usage: node cross.js produce NAMESRV_ADDR TOPIC COUNT [BODY_BYTES]
//        node cross.js consume NAMESRV_ADDR TOPIC COUNT GROUP
// Prints one JSON line {"sent": [...]} or {"received": [...]}; exits 1 on any error.

const { Producer, Consumer, Message } = require('ali-ons');

const httpclient = { async request() { throw new Error('no HTTP lookups in this test'); } };
const logger = { info() {}, warn() {}, debug() {}, error: console.error };

function body(i, size) {
  const text = `from ali-ons ${i} `;
  return text + 'x'.repeat(Math.max(0, size - text.length));
}

async function produce(nameSrv, topic, count, size) {
  const producer = new Producer({ httpclient, logger, nameSrv, producerGroup: 'PID_apogee_cross' });
  await producer.ready();
  const sent = [];
  for (let i = 0; i < count; i++) {
    const msg = new Message(topic, 'TagJs', body(i, size));
    msg.keys = [ `js-key-${i}` ];
    const r = await producer.send(msg);
    sent.push({ status: r.sendStatus, msgId: r.msgId, queueId: r.messageQueue.queueId });
  }
  await producer.close();
  return { sent };
}

async function consume(nameSrv, topic, count, consumerGroup) {
  const consumer = new Consumer({ httpclient, logger, nameSrv, consumerGroup, persistent: true });
  const received = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${count} received`)), 40000);
    consumer.subscribe(topic, '*', async msg => {
      received.push({
        body: msg.body.toString(), tags: msg.tags, keys: msg.keys, msgId: msg.msgId,
        uniqKey: msg.properties && msg.properties.UNIQ_KEY,
      });
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
  return { received };
}

module.exports = { produce, consume };

async function main() {
  const [ mode, nameSrv, topic, countText, extra ] = process.argv.slice(2);
  const count = Number(countText);
  const result = mode === 'produce'
    ? await produce(nameSrv, topic, count, Number(extra || 0))
    : await consume(nameSrv, topic, count, extra);
  // Exit only once the line is out: a pipe takes 64 KiB at a time, and process.exit does not wait.
  await new Promise(resolve => process.stdout.write(JSON.stringify(result) + '\n', resolve));
}

if (require.main === module) {
  main().then(() => process.exit(0), err => {
    console.error(err && err.stack || err);
    process.exit(1);
  });
}
