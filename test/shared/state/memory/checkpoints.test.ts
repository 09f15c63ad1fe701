import { describeCheckpointContract } from '../checkpoints-contract.js';

describeCheckpointContract('memory', { durable: false }, async () => ({ location: { kind: 'memory' }, dispose: async () => {} }));
