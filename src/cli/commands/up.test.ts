import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CliError } from '../errors.ts';
import { durabilityLine, natsFrom, otlpFrom, redactNats } from './up.ts';

test('--nats wins over CONTINUUM_NATS; neither means the embedded store', () => {
  assert.equal(natsFrom('nats://a:4222', { CONTINUUM_NATS: 'nats://b:4222' }), 'nats://a:4222');
  assert.equal(natsFrom(undefined, { CONTINUUM_NATS: ' nats://b:4222 ' }), 'nats://b:4222');
  assert.equal(natsFrom(undefined, {}), undefined);
  assert.equal(natsFrom(undefined, { CONTINUUM_NATS: '' }), undefined);
});

test('several servers, other schemes and bare host:port are accepted as given', () => {
  assert.equal(natsFrom('nats://a:4222, tls://b:4443,c:4222', {}), 'nats://a:4222,tls://b:4443,c:4222');
  assert.equal(natsFrom('wss://user:pw@nats.example.com', {}), 'wss://user:pw@nats.example.com');
});

test('anything else is a user error naming where it came from', () => {
  const bad = (flag: string | undefined, env: Record<string, string>, source: RegExp) =>
    assert.throws(() => natsFrom(flag, env), (e: unknown) => e instanceof CliError && e.exitCode === 1 && source.test(e.message) && /nats:\/\/host:4222/.test(e.message));
  bad('http://a:4222', {}, /^--nats "http:\/\/a:4222" is not a NATS server URL/);
  bad('', {}, /^--nats "" is not/);
  bad('nats://a:4222,,b', {}, /^--nats "" is not/);
  bad(undefined, { CONTINUUM_NATS: 'nats://' }, /^CONTINUUM_NATS "nats:\/\/" is not/);
  bad('a:99999', {}, /^--nats "a:99999" is not/);
});

test('credentials never reach the printed URL', () => {
  assert.equal(redactNats('nats://user:secret@a:4222,b:4222,tok@c:4222'), 'nats://***@a:4222,b:4222,***@c:4222');
  assert.equal(redactNats('nats://a:4222'), 'nats://a:4222');
});

test('--otlp-endpoint wins over CONTINUUM_OTLP_ENDPOINT; headers come from CONTINUUM_OTLP_HEADERS; neither means no tracing', () => {
  assert.deepEqual(otlpFrom('http://a:4318', { CONTINUUM_OTLP_ENDPOINT: 'http://b:4318' }), { endpoint: 'http://a:4318', headers: {} });
  assert.deepEqual(otlpFrom(undefined, { CONTINUUM_OTLP_ENDPOINT: ' https://b:4318/x ', CONTINUUM_OTLP_HEADERS: 'x-api-key=a%3Db, tenant = t1' }), {
    endpoint: 'https://b:4318/x',
    headers: { 'x-api-key': 'a=b', tenant: 't1' },
  });
  assert.equal(otlpFrom(undefined, {}), undefined);
  assert.equal(otlpFrom(undefined, { CONTINUUM_OTLP_ENDPOINT: '' }), undefined);
  const bad = (flag: string | undefined, env: Record<string, string>, message: RegExp) =>
    assert.throws(() => otlpFrom(flag, env), (e: unknown) => e instanceof CliError && e.exitCode === 1 && message.test(e.message));
  bad('grpc://a:4317', {}, /^--otlp-endpoint "grpc:\/\/a:4317" is not an http\(s\) URL/);
  bad('', {}, /^--otlp-endpoint "" is not/);
  bad(undefined, { CONTINUUM_OTLP_ENDPOINT: 'http://a', CONTINUUM_OTLP_HEADERS: 'novalue' }, /CONTINUUM_OTLP_HEADERS must be name=value pairs/);
});

test('the banner states durability plainly when power loss is covered, and warns when it is not or cannot be known', () => {
  assert.equal(durabilityLine({ powerLoss: true, detail: 'synced' }), 'synced');
  assert.equal(durabilityLine({ powerLoss: false, detail: 'not synced' }), 'WARNING: not synced');
  assert.equal(durabilityLine({ powerLoss: null, detail: 'unknown' }), 'WARNING: unknown');
});
