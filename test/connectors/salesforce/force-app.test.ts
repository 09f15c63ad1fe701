import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MAX_USERS_EVENTS, TRACK_EVENT_ROUTES, trackEventRoutes } from '../../../connectors/salesforce/invocable-input.js';
import {
  DEFAULT_PLATFORM_EVENT_CHANNEL,
  DEFAULT_PLATFORM_EVENT_FIELDS,
  PLATFORM_EVENT_OBJECT,
} from '../../../connectors/salesforce/platform-event-mapping.js';

/**
 * The Apex side cannot run here, so these tests hold it to the relay's contract: the same routes, item field names,
 * batch size and credential names, and a Platform Event whose fields are exactly the ones the mapping reads.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '../../../connectors/salesforce/force-app/main/default');
const read = (path: string) => readFileSync(join(root, path), 'utf8');
const apex = read('classes/OncekitTrackEvent.cls');
const tag = (xml: string, name: string) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((match) => match[1]);

describe('the Apex invocable class', () => {
  it('posts to the relay’s three routes through the named credential', () => {
    expect(apex).toContain("NAMED_CREDENTIAL = 'Oncekit_Relay'");
    expect(apex).toContain("'callout:' + NAMED_CREDENTIAL + PATH_PREFIX + route");
    const prefix = /PATH_PREFIX = '([^']+)'/.exec(apex)?.[1];
    const routes = /ROUTES = new Set<String>\{([^}]*)\}/
      .exec(apex)?.[1]
      ?.match(/'[^']+'/g)
      ?.map((route) => route.slice(1, -1));
    expect(routes?.sort()).toEqual([...trackEventRoutes].sort());
    for (const route of trackEventRoutes) expect(`${prefix}${route}`).toBe(TRACK_EVENT_ROUTES[route].path);
  });

  it('sends exactly the item fields the relay reads, under the same names', () => {
    const request = /public class Request \{([\s\S]*?)\n {4}\}/.exec(apex)?.[1] ?? '';
    const variables = [...request.matchAll(/public (?:String|Datetime) (\w+);/g)].map((match) => match[1]);
    const itemFields = ['userId', 'accountId', 'recordId', 'leadId', 'contactId', 'key', 'fields', 'dateTriggered', 'idempotencyKey'];
    expect(variables).toEqual(['route', ...itemFields]);
    const put = [...apex.matchAll(/(?:putIfSet\(item, |item\.put\()'(\w+)'/g)].map((match) => match[1]);
    expect(put.sort()).toEqual([...itemFields].sort());
    expect(apex).toContain("'usersEvents' => items");
    for (const route of trackEventRoutes) expect(itemFields).toContain(TRACK_EVENT_ROUTES[route].idField);
  });

  it('splits lists at the relay’s limit and reads its answer', () => {
    expect(Number(/MAX_ITEMS_PER_REQUEST = (\d+);/.exec(apex)?.[1])).toBe(MAX_USERS_EVENTS);
    expect(apex).toContain("setHeader('Idempotency-Key'");
    expect(apex).toContain("get('results')");
    expect(apex).toContain("answer.get('ok') == true");
    expect(apex).toContain("answer.get('error')");
    expect(apex).toContain('UUID.randomUUID()');
  });
});

describe('the credentials', () => {
  it('send Authorization: Bearer <secret> from the external credential the named credential uses', () => {
    const external = read('externalCredentials/Oncekit_Relay.externalCredential-meta.xml');
    const named = read('namedCredentials/Oncekit_Relay.namedCredential-meta.xml');
    const permissions = read('permissionsets/Oncekit_Relay_Caller.permissionset-meta.xml');
    expect(tag(external, 'authenticationProtocol')).toEqual(['Custom']);
    expect(external).toContain("<parameterValue>{!'Bearer ' &amp; $Credential.Oncekit_Relay.RelaySecret}</parameterValue>");
    expect(tag(named, 'externalCredential')).toEqual(['Oncekit_Relay']);
    expect(tag(named, 'namedCredentialType')).toEqual(['SecuredEndpoint']);
    const principal = tag(external, 'parameterName')[0];
    expect(tag(permissions, 'externalCredentialPrincipal')).toEqual([`Oncekit_Relay-${principal}`]);
    expect(tag(permissions, 'apexClass')).toEqual(['OncekitTrackEvent']);
  });
});

describe('the Platform Event', () => {
  const objectDir = `objects/${PLATFORM_EVENT_OBJECT}`;

  it('is the default channel, high volume, published after commit', () => {
    expect(DEFAULT_PLATFORM_EVENT_CHANNEL).toBe(`/event/${PLATFORM_EVENT_OBJECT}`);
    const object = read(`${objectDir}/${PLATFORM_EVENT_OBJECT}.object-meta.xml`);
    expect(tag(object, 'eventType')).toEqual(['HighVolume']);
    expect(tag(object, 'publishBehavior')).toEqual(['PublishAfterCommit']);
  });

  it('has exactly the fields the mapping reads, with types that fit', () => {
    const files = readdirSync(join(root, objectDir, 'fields'));
    const fields = Object.fromEntries(
      files.map((file) => {
        const xml = read(`${objectDir}/fields/${file}`);
        expect(file).toBe(`${tag(xml, 'fullName')[0]}.field-meta.xml`);
        return [tag(xml, 'fullName')[0], { type: tag(xml, 'type')[0], required: tag(xml, 'required')[0] }];
      }),
    );
    expect(Object.keys(fields).sort()).toEqual(Object.values(DEFAULT_PLATFORM_EVENT_FIELDS).sort());
    const map = DEFAULT_PLATFORM_EVENT_FIELDS;
    expect(fields[map.userId]).toEqual({ type: 'Text', required: 'true' });
    expect(fields[map.eventKey]).toEqual({ type: 'Text', required: 'true' });
    expect(fields[map.accountId]).toEqual({ type: 'Text', required: 'false' });
    expect(fields[map.fields]).toEqual({ type: 'LongTextArea', required: 'false' });
    expect(fields[map.dateTriggered]).toEqual({ type: 'DateTime', required: 'false' });
    expect(fields[map.idempotencyKey]).toEqual({ type: 'Text', required: 'false' });
  });
});
