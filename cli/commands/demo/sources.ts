/** The sources the demo sends from; each has its own user-id domain, so the target's events can be told apart. */
export const SOURCES = ['salesforce', 'salesforce-event', 'keygen', 'segment'] as const;
export type DemoSource = (typeof SOURCES)[number];

export const SOURCE_LABELS: Record<DemoSource, string> = {
  salesforce: 'Salesforce invocable',
  'salesforce-event': 'Salesforce Platform Events',
  keygen: 'Keygen webhooks',
  segment: 'Segment webhooks',
};

export const TENANT = 'demo';
