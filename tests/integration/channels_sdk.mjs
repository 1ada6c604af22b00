#!/usr/bin/env node
// REST side of tests/integration/channels_soketi.sh, through the official
// `pusher` SDK:
//   node channels_sdk.mjs PORT MASTER_KEY_B64 trigger CHANNEL EVENT JSON
//     (encrypted when CHANNEL is private-encrypted-: encryptionMasterKeyBase64)
//   node channels_sdk.mjs PORT MASTER_KEY_B64 user USER_ID EVENT JSON   (sendToUser)
// soketi answers REST errors with 200 + {"error":..}: both are checked.
import { createRequire } from 'node:module';

const require = createRequire(process.env.PEERS_CLIENTS ? `${process.env.PEERS_CLIENTS}/node_modules/`
                                                   : new URL('../peers/clients/node_modules/', import.meta.url));
const Pusher = require('pusher');

const [port, master, mode, a, b, json] = process.argv.slice(2);
const pusher = new Pusher({
  appId: 'app-id', key: 'app-key', secret: 'app-secret', host: '127.0.0.1', port, useTLS: false,
  encryptionMasterKeyBase64: master,
});
const data = JSON.parse(json);
try {
  const res = mode === 'user' ? await pusher.sendToUser(a, b, data) : await pusher.trigger(a, b, data);
  const body = await res.text();
  if (res.status !== 200 || /"error"/.test(body)) {
    console.error(`REST ${res.status}: ${body}`);
    process.exit(1);
  }
  console.log(`ok ${res.status} ${body}`);
} catch (e) {
  console.error(`REST failed: ${e.message}${e.body ? ' ' + e.body : ''}`);
  process.exit(1);
}
