#!/usr/bin/env node
// Place a market order on the paper venue, follow it until it is filled, then watch the
// venue's market data for a few seconds: nothing but a NATS client, JSON and the exported
// JSON Schemas (no tradebus code).
//
//     node place-and-watch.mjs [--seconds N]      # against `tradebus up` (TRADEBUS_NATS_URL)
//
// Exit status: 0 when the order filled, ticks arrived and every message validated against
// the schemas; 1 otherwise (rejected, timeout, invalid message, no ticks); 2 on bad usage.

import { createHash, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { connect, StringCodec } from "nats";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const NATS_URL = process.env.TRADEBUS_NATS_URL || "nats://127.0.0.1:4222";
const SCHEMA_DIR = process.env.TRADEBUS_SCHEMA_DIR || fileURLToPath(new URL("../../schemas/json-schema/", import.meta.url));
const VENUE = "paper";
const ACCOUNT = "demo";
const SYMBOL = "BTC/USDT";
const QUANTITY = "0.01"; // decimals travel as strings: never turn a price or quantity into a JS number
const ORDER_TIMEOUT_MS = 20_000;
const DEFAULT_WATCH_SECONDS = 10;

const sc = StringCodec();

class Failure extends Error {} // an expected failure: print its message, no stack trace

// ---------------------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  let seconds = process.env.TRADEBUS_WATCH_SECONDS ?? String(DEFAULT_WATCH_SECONDS);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      console.log("usage: node place-and-watch.mjs [--seconds N]\n\n" +
        "Places a market buy of 0.01 BTC/USDT on venue paper, account demo, prints its events until it is\n" +
        "filled, then watches tradebus.md.paper.*.* for N seconds (default 10, or TRADEBUS_WATCH_SECONDS).\n" +
        "NATS server: TRADEBUS_NATS_URL (default nats://127.0.0.1:4222).");
      process.exit(0);
    } else if (arg === "--seconds") {
      seconds = argv[++i];
    } else if (arg.startsWith("--seconds=")) {
      seconds = arg.slice("--seconds=".length);
    } else {
      usage(`unknown argument ${JSON.stringify(arg)}`);
    }
  }
  if (seconds === undefined || !/^\d+(\.\d+)?$/.test(seconds) || Number(seconds) <= 0) {
    usage(`--seconds wants a positive number of seconds, got ${JSON.stringify(seconds ?? "")}`);
  }
  return { seconds: Number(seconds) };
}

function usage(message) {
  console.error(`place-and-watch: ${message} (try --help)`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// JSON Schemas

function loadValidators() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  ajv.addKeyword("discriminator"); // an OpenAPI-style annotation in the exported files
  // Decimal strings: what Python's Decimal accepts, finite only ("0.01", "59889.84", "1E-8").
  ajv.addFormat("decimal", /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/);
  const validators = {};
  for (const name of ["order-command", "order-event", "rejection-event", "market-data"]) {
    const path = `${SCHEMA_DIR.replace(/\/?$/, "/")}${name}.json`;
    if (!existsSync(path)) {
      throw new Failure(`JSON Schema ${path} not found: run this script from a tradebus checkout ` +
        "(it reads ../../schemas/json-schema/) or set TRADEBUS_SCHEMA_DIR");
    }
    let schema;
    try {
      schema = JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new Failure(`cannot read JSON Schema ${path}: ${err.message}`);
    }
    ajv.addSchema(schema);
    validators[name] = makeValidator(ajv, name, schema);
  }
  return validators;
}

// Returns check(message) -> null when valid, else a readable reason. The payload schemas are
// unions tagged by `type`; on failure the reason comes from the member the `type` names, which
// reads much better than the errors of every member of the union.
function makeValidator(ajv, name, schema) {
  const whole = ajv.getSchema(schema.$id);
  const mapping = schema.discriminator?.mapping ?? {};
  return (message) => {
    if (whole(message)) return null;
    const member = typeof message?.type === "string" && Object.hasOwn(mapping, message.type)
      ? ajv.getSchema(schema.$id + mapping[message.type]) : null;
    if (!member) return `not a ${name}: unknown type ${JSON.stringify(message?.type)}`;
    member(message);
    return ajv.errorsText(member.errors, { dataVar: message.type });
  };
}

// JSON text with BigInt values written as exact integers (timestamps are nanoseconds, beyond
// the 2^53 a JS number holds exactly).
function encodeJson(value) {
  const marks = [];
  const text = JSON.stringify(value, (_key, v) => {
    if (typeof v !== "bigint") return v;
    marks.push(v.toString());
    return `\u0000bigint${marks.length - 1}\u0000`;
  });
  return text.replace(/"\\u0000bigint(\d+)\\u0000"/g, (_m, i) => marks[Number(i)]);
}

// ---------------------------------------------------------------------------------------
// Subjects

const encodeToken = (symbol) =>
  [...Buffer.from(symbol, "utf8")].map((byte) => {
    const char = String.fromCharCode(byte);
    return byte < 0x80 && /[A-Za-z0-9_/:-]/.test(char) ? char : "~" + byte.toString(16).toUpperCase().padStart(2, "0");
  }).join("");

function decodeToken(token) {
  const bytes = [];
  for (let i = 0; i < token.length;) {
    if (token[i] === "~") {
      const hex = token.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) throw new Error(`invalid symbol token ${token}`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

const commandSubject = (venue, account) => `tradebus.cmd.${venue}.${account}`;
// Every answer to a command: the venue's order events, and risk's rejections (a family of
// its own, so risk can never state a fill). Each validated against its own schema.
const answerSubjects = (venue, account) => [
  [`tradebus.evt.order.${venue}.${account}`, "order-event"],
  [`tradebus.evt.reject.${venue}.${account}`, "rejection-event"],
];

// ---------------------------------------------------------------------------------------
// The order

function describe(event) {
  const head = `${event.type.padEnd(17)} ${event.client_order_id ?? ""}`;
  switch (event.type) {
    case "accepted":
      return `${head} ${event.side} ${event.quantity} ${event.symbol} ${event.order_type}` +
        (event.price != null ? ` @ ${event.price}` : "") + ` (venue id ${event.venue_order_id})`;
    case "partially_filled":
    case "filled": {
      const f = event.fill;
      return `${head} ${f.quantity} @ ${f.price} (${f.liquidity}, fee ${f.fee} ${f.fee_currency}); ` +
        `filled ${event.cum_quantity}, left ${event.leaves_quantity}, avg ${event.avg_price}`;
    }
    case "rejected":
      return `${head} ${event.reason}: ${event.message ?? ""}`;
    case "command_rejected":
      return `${head} ${event.action} refused: ${event.reason} ${event.message ?? ""}`;
    case "cancelled":
      return `${head} ${event.reason}, filled ${event.cum_quantity}`;
    default:
      return head;
  }
}

// The fields of a place, in the schema's order, whose values name its terms (all but the
// timing: ts_created, ttl_ms), with the schema's defaults.
const PLACE_TERMS = [
  ["client_order_id"], ["venue"], ["account"], ["symbol"], ["side"], ["order_type"], ["quantity"],
  ["price", null], ["stop_price", null], ["time_in_force", "GTC"], ["expire_time", null],
  ["post_only", false], ["reduce_only", false],
];

// `<venue>.<account>.<client order id>.place.<digest>`: the digest is 16 hex digits of the
// SHA-256 of the terms as a compact JSON array (docs/raw-protocol.md). A retry of the same
// place has the same id; the same client order id with other terms gets another one, so
// the fleet refuses it with a reason instead of JetStream dropping it as a duplicate.
function placeDedupeId(command) {
  const terms = PLACE_TERMS.map(([name, fallback]) => (name in command ? command[name] : fallback));
  const digest = createHash("sha256").update(JSON.stringify(terms)).digest("hex").slice(0, 16);
  return `${command.venue}.${command.account}.${command.client_order_id}.place.${digest}`;
}

async function placeAndFollow(nc, validators) {
  const clientOrderId = "node-" + randomUUID().replaceAll("-", "").slice(0, 24);
  const command = {
    type: "place",
    client_order_id: clientOrderId,
    venue: VENUE,
    account: ACCOUNT,
    symbol: SYMBOL,
    side: "buy",
    order_type: "market",
    quantity: QUANTITY,
    time_in_force: "GTC",
    ts_created: BigInt(Date.now()) * 1_000_000n,
  };
  const wire = encodeJson(command);
  const invalid = validators["order-command"](JSON.parse(wire)); // check exactly what will be sent
  if (invalid) throw new Failure(`the place command does not match order-command.json: ${invalid}\n${wire}`);

  // Subscribe BEFORE publishing, or the first events can be missed.
  let settle;
  const outcome = new Promise((resolve) => { settle = resolve; });
  const subs = answerSubjects(VENUE, ACCOUNT).map(([subject, schema]) => nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return settle({ error: `event subscription failed: ${err.message}` });
      let event;
      try {
        event = JSON.parse(sc.decode(msg.data));
      } catch (parseErr) {
        return settle({ error: `an event is not JSON (${parseErr.message}): ${sc.decode(msg.data)}` });
      }
      if (event?.client_order_id !== clientOrderId) return; // another order of the account
      const problem = validators[schema](event);
      if (problem) return settle({ error: `an event does not match ${schema}.json: ${problem}\n${sc.decode(msg.data)}` });
      console.log(describe(event));
      if (event.type === "filled") settle({ ok: true });
      else if (["rejected", "command_rejected", "cancelled", "expired"].includes(event.type)) {
        settle({ error: `order ${clientOrderId} ended ${event.type}` + (event.reason ? ` (${event.reason})` : "") });
      }
    },
  }));
  await nc.flush(); // the subscription is registered on the server

  const msgID = placeDedupeId(command); // the command's dedupe id
  console.log(`placing  ${clientOrderId}: buy ${QUANTITY} ${SYMBOL} market on ${VENUE}/${ACCOUNT} (Nats-Msg-Id ${msgID})`);
  let ack;
  try {
    ack = await nc.jetstream().publish(commandSubject(VENUE, ACCOUNT), sc.encode(wire), { msgID, timeout: 5000 });
  } catch (err) {
    subs.forEach((sub) => sub.unsubscribe());
    const hint = /503|no responders/i.test(String(err.message ?? err))
      ? " (no JetStream stream takes tradebus.cmd.*: is the fleet running? start it with `tradebus up`)" : "";
    throw new Failure(`publishing the command failed: ${err.message ?? err}${hint}`);
  }
  console.log(`stored   in stream ${ack.stream} as #${ack.seq}${ack.duplicate ? " (duplicate: nothing new was sent)" : ""}`);

  const timer = setTimeout(
    () => settle({ error: `order ${clientOrderId} not filled within ${ORDER_TIMEOUT_MS / 1000} s (is connector.paper running?)` }),
    ORDER_TIMEOUT_MS);
  const result = await outcome;
  clearTimeout(timer);
  subs.forEach((sub) => sub.unsubscribe());
  if (result.error) throw new Failure(result.error);
  return clientOrderId;
}

// ---------------------------------------------------------------------------------------
// Market data

async function watchMarketData(nc, validators, seconds) {
  const subject = `tradebus.md.${VENUE}.*.*`;
  const byType = new Map(); // message type -> { count, symbols }
  const lastSeq = new Map(); // stream (subject) -> last seq
  let total = 0;
  let lost = 0;
  const problems = [];

  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return problems.push(`subscription failed: ${err.message}`);
      total += 1;
      const text = sc.decode(msg.data);
      let data;
      try {
        data = JSON.parse(text);
      } catch (parseErr) {
        return problems.push(`${msg.subject}: not JSON (${parseErr.message})`);
      }
      const problem = validators["market-data"](data);
      if (problem) return problems.push(`${msg.subject}: does not match market-data.json: ${problem}\n  ${text}`);
      const symbolToken = msg.subject.split(".")[4];
      if (decodeToken(symbolToken) !== data.symbol || encodeToken(data.symbol) !== symbolToken) {
        problems.push(`${msg.subject}: the subject's symbol token does not match symbol ${JSON.stringify(data.symbol)}`);
      }
      const seen = byType.get(data.type) ?? { count: 0, symbols: new Set() };
      seen.count += 1;
      seen.symbols.add(data.symbol);
      byType.set(data.type, seen);
      // seq numbers each stream (one subject) from 1; a jump means messages lost on the way.
      const previous = lastSeq.get(msg.subject);
      if (previous !== undefined && data.seq > previous + 1) lost += data.seq - previous - 1;
      lastSeq.set(msg.subject, data.seq);
    },
  });
  await nc.flush();
  console.log(`watching ${subject} for ${seconds} s`);
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  sub.unsubscribe();

  for (const [type, seen] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`ticks    ${type.padEnd(14)} ${String(seen.count).padStart(7)} messages, ${seen.symbols.size} symbols`);
  }
  console.log(`ticks    total ${total} messages, ${problems.length} invalid, ${lost} lost on the way (seq gaps)`);
  for (const problem of problems.slice(0, 10)) console.error(`place-and-watch: ${problem}`);
  if (problems.length > 10) console.error(`place-and-watch: ... and ${problems.length - 10} more invalid messages`);
  if (problems.length) throw new Failure(`${problems.length} market-data messages did not validate`);
  const ticks = (byType.get("quote")?.count ?? 0) + (byType.get("trade")?.count ?? 0);
  if (ticks === 0) {
    throw new Failure(`no quotes or trades on ${subject} within ${seconds} s (is connector.paper running and subscribed?)`);
  }
}

// ---------------------------------------------------------------------------------------

async function main() {
  const { seconds } = parseArgs(process.argv.slice(2));
  const validators = loadValidators();
  let nc;
  try {
    nc = await connect({ servers: NATS_URL, name: "tradebus-node-example", timeout: 5000 });
  } catch (err) {
    throw new Failure(`cannot connect to NATS at ${NATS_URL}: ${err.message ?? err} ` +
      "(start the fleet with `tradebus up`, or set TRADEBUS_NATS_URL)");
  }
  try {
    const clientOrderId = await placeAndFollow(nc, validators);
    console.log(`order    ${clientOrderId} filled`);
    await watchMarketData(nc, validators, seconds);
  } finally {
    await nc.drain().catch(() => nc.close());
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`place-and-watch: ${err instanceof Failure ? err.message : err?.stack ?? err}`);
    process.exit(1);
  },
);
