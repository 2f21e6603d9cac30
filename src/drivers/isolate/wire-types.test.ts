/**
 * The in-sandbox runtime cannot import core, so protocol.ts mirrors core's event wire types. This file
 * does not type-check (`tsc -p .` in `npm test`) if the two drift apart; the test below only makes the
 * runner count it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EventHead, WireQueueMessage } from '../../core/driver.ts';
import type { WireEventHead, WireQueueMessage as RuntimeQueueMessage } from '../../runtime/isolate/protocol.ts';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

const eventHeads: Same<EventHead, WireEventHead> = true;
const queueMessages: Same<WireQueueMessage, RuntimeQueueMessage> = true;

test('core and runtime agree on the event wire types', () => {
  assert.ok(eventHeads && queueMessages);
});
