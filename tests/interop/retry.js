'use strict';
// Retries with npm `ali-ons`: sends "flaky" and "doomed" to TOPIC, then consumes in GROUP with a
// handler that fails "flaky" on its first delivery and "doomed" always (maxReconsumeTimes 2).
// Waits until flaky came back once and doomed was delivered three times (reconsume 0, 1, 2),
// then a moment more for anything unexpected.
// Usage: node retry.js NAMESRV_ADDR TOPIC GROUP
// Prints one JSON line {"deliveries": [{body, reconsumeTimes, topic, at}]}; exits 1 on any error.

const { Producer, Consumer, Message } = require('ali-ons');

const httpclient = { async request() { throw new Error('no HTTP lookups in this test'); } };
const logger = { info() {}, warn() {}, debug() {}, error() {} };

async function main() {
  const [ nameSrv, topic, consumerGroup ] = process.argv.slice(2);
  const producer = new Producer({ httpclient, logger, nameSrv, producerGroup: 'PID_apogee_retry_js' });
  await producer.ready();
  for (const body of [ 'flaky', 'doomed' ]) {
    await producer.send(new Message(topic, 'TagR', body));
  }
  await producer.close();

  const consumer = new Consumer({ httpclient, logger, nameSrv, consumerGroup, persistent: true, maxReconsumeTimes: 2 });
  const deliveries = [];
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`deliveries so far: ${JSON.stringify(deliveries)}`)), 40000);
    consumer.subscribe(topic, '*', async msg => {
      const body = msg.body.toString();
      deliveries.push({ body, reconsumeTimes: msg.reconsumeTimes, topic: msg.topic, at: Date.now() });
      const flakyBack = deliveries.some(d => d.body === 'flaky' && d.reconsumeTimes === 1);
      const doomedThrice = deliveries.filter(d => d.body === 'doomed').length >= 3;
      if (flakyBack && doomedThrice) {
        clearTimeout(timer);
        setTimeout(resolve, 3000);
      }
      if (body === 'doomed' || msg.reconsumeTimes === 0) {
        throw new Error(`failing ${body} on purpose`);
      }
    });
  });
  consumer.on('error', () => {});
  await consumer.ready();
  await done;
  await consumer.close();
  console.log(JSON.stringify({ deliveries }));
}

main().then(() => process.exit(0), err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
