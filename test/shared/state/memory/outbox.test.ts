import { MemoryOutboxStore } from '../../../../shared/outbox/index.js';
import { describeOutboxStoreContract } from '../outbox-contract.js';

describeOutboxStoreContract('memory', { durable: false }, async () => {
  let store: MemoryOutboxStore | null = null;
  return {
    // One store; every handle is it (close() is a no-op, so a second handle stays usable).
    open: async (clock) => {
      store ??= new MemoryOutboxStore({ clock });
      return store;
    },
    dispose: async () => {},
  };
});
