'use strict';
// Asks an Apogee name server for a topic route with npm `ali-ons` (pure JavaScript).
// Usage: node namesrv_route.js NAMESRV_ADDR TOPIC
// Prints one JSON line with the route as ali-ons parsed it; exits 1 on any error.

const MQClientAPI = require('ali-ons/lib/mq_client_api');

async function main() {
  const [ addr, topic ] = process.argv.slice(2);
  const logger = { info() {}, warn() {}, debug() {}, error: console.error };
  // The HTTP client is only used to look name servers up by URL; this test names one directly.
  const httpclient = { async request() { throw new Error('no HTTP lookups in this test'); } };
  const api = new MQClientAPI({ nameSrv: addr, httpclient, logger, responseTimeout: 5000 });
  await api.ready();
  try {
    const route = await api.getTopicRouteInfoFromNameServer(topic, 5000);
    console.log(JSON.stringify(route));
  } finally {
    await api.close();
  }
}

main().then(() => process.exit(0), err => {
  console.error(err && err.stack || err);
  process.exit(1);
});
