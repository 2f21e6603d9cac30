/** The cluster backend (ARCHITECTURE §2) on NATS JetStream; see README.md in this folder. */
export { NatsQueueStore, openNatsQueueStore, type NatsQueueStoreOptions } from './queues.ts';
