import { describe, expect, it } from 'vitest';
import { redactSecrets, redactSecretText } from '../../../connectors/relay/console-routes.js';

describe('redactSecrets', () => {
  it('replaces whatever stands under a secret-looking name, nested objects and lists included, and keeps the rest', () => {
    const payload = {
      userId: 'u1',
      events: [{ key: 'purchase', fields: { apiKey: 'k-1', auth: { password: { hash: 'h' } }, tokens: ['t1'], total: 3 } }],
    };
    expect(redactSecrets(payload)).toEqual({
      userId: 'u1',
      events: [{ key: 'purchase', fields: { apiKey: '[redacted]', auth: { password: '[redacted]' }, tokens: '[redacted]', total: 3 } }],
    });
    expect(payload.events[0]?.fields.apiKey).toBe('k-1');
  });

  it('shows nothing of a payload too large to walk whole, rather than a copy only partly redacted', () => {
    const wide = { fields: Object.fromEntries(Array.from({ length: 20_000 }, (_, n) => [`f${n}`, { secret: `s${n}` }])) };
    expect(redactSecrets(wide)).toBe('[redacted]');
  });

  it('redacts secret-looking names in raw text too', () => {
    expect(redactSecretText('{"user":"u1","password":"p w","token":12}')).toBe(
      '{"user":"u1","password":"[redacted]","token":"[redacted]"}',
    );
  });
});
