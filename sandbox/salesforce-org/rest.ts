import { jsonReply, type Reply } from '../http.js';

export type FakeRecordType = 'Lead' | 'Contact' | 'Account';
export type FakeRecord = Readonly<Record<string, unknown>> & { readonly Id: string };

export interface RecordedQuery {
  readonly soql: string;
  readonly type: string;
}

/** `/services/data/vXX.X/…` over an in-memory record set. */
export interface RestApi {
  /** Every SOQL statement received, with its object type. */
  readonly queries: readonly RecordedQuery[];
  putRecord(type: FakeRecordType, record: FakeRecord): void;
  /** `path` is what follows `/services/data/vXX.X/`. */
  handle(method: string | undefined, path: string, searchParams: URLSearchParams): Reply;
}

const DEFAULT_FIELDS: Record<FakeRecordType, readonly string[]> = {
  Lead: ['Id', 'Email', 'FirstName', 'LastName', 'Company'],
  Contact: ['Id', 'Email', 'FirstName', 'LastName', 'AccountId'],
  Account: ['Id', 'Name'],
};

export const notFoundReply = (): Reply => jsonReply(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);

export function createRestApi(apiVersion: string, initial: Readonly<Partial<Record<FakeRecordType, readonly FakeRecord[]>>>): RestApi {
  const records: Record<FakeRecordType, Map<string, FakeRecord>> = { Lead: new Map(), Contact: new Map(), Account: new Map() };
  for (const [type, list] of Object.entries(initial) as [FakeRecordType, readonly FakeRecord[]][]) {
    for (const record of list) records[type].set(record.Id, record);
  }
  const queries: RecordedQuery[] = [];

  function query(soql: string): Reply {
    const match = /^SELECT\s+(.+?)\s+FROM\s+(\w+)\s+WHERE\s+Id\s+(?:IN\s*\((.+)\)|=\s*('(?:[^'\\]|\\.)*'))\s*$/i.exec(soql.trim());
    if (!match)
      return jsonReply(400, [{ errorCode: 'MALFORMED_QUERY', message: 'the fake org understands SELECT … FROM T WHERE Id IN (…)' }]);
    const type = match[2] as string;
    queries.push({ soql, type });
    if (!(type in records)) return jsonReply(400, [{ errorCode: 'INVALID_TYPE', message: `sObject type '${type}' is not supported.` }]);
    const recordType = type as FakeRecordType;
    const fields = (match[1] as string).split(',').map((field) => field.trim());
    for (const field of fields) {
      if (!knownField(recordType, field)) {
        return jsonReply(400, [{ errorCode: 'INVALID_FIELD', message: `No such column '${field}' on entity '${type}'.` }]);
      }
    }
    const ids = [...(match[3] ?? match[4] ?? '').matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => (m[1] as string).replace(/\\(.)/g, '$1'));
    const rows = ids.flatMap((id) => {
      const record = records[recordType].get(id);
      return record ? [shape(recordType, record, fields)] : [];
    });
    return jsonReply(200, { totalSize: rows.length, done: true, records: rows });
  }

  function knownField(type: FakeRecordType, field: string): boolean {
    const [head, tail] = field.split('.', 2) as [string, string | undefined];
    if (tail !== undefined) {
      const related = head as FakeRecordType;
      return related in records && knownField(related, tail);
    }
    if (DEFAULT_FIELDS[type].some((name) => name.toLowerCase() === head.toLowerCase())) return true;
    return [...records[type].values()].some((record) => Object.keys(record).some((name) => name.toLowerCase() === head.toLowerCase()));
  }

  function shape(type: FakeRecordType, record: FakeRecord, fields: readonly string[]): Record<string, unknown> {
    const row: Record<string, unknown> = { attributes: { type, url: `/services/data/v${apiVersion}/sobjects/${type}/${record.Id}` } };
    for (const field of fields) {
      const [head, tail] = field.split('.', 2) as [string, string | undefined];
      if (tail === undefined) {
        const name = Object.keys(record).find((key) => key.toLowerCase() === head.toLowerCase()) ?? head;
        row[name] = record[name] ?? null;
        continue;
      }
      const relatedType = head as FakeRecordType;
      const related = records[relatedType]?.get(String(record[`${head}Id`] ?? ''));
      const nested = (row[head] as Record<string, unknown> | undefined) ?? (related ? { attributes: { type: relatedType } } : null);
      if (nested && related) nested[tail] = related[tail] ?? null;
      row[head] = nested;
    }
    return row;
  }

  return {
    queries,
    putRecord(type, record) {
      records[type].set(record.Id, record);
    },
    handle(method, path, searchParams) {
      if (method === 'GET' && path === 'query') return query(searchParams.get('q') ?? '');
      const sobject = /^sobjects\/(Lead|Contact|Account)\/([A-Za-z0-9]{15,18})$/.exec(path);
      if (method === 'GET' && sobject) {
        const type = sobject[1] as FakeRecordType;
        const record = records[type].get(sobject[2] as string);
        if (!record) return notFoundReply();
        const fields = searchParams.get('fields')?.split(',') ?? Object.keys(record);
        return jsonReply(200, shape(type, record, fields));
      }
      return notFoundReply();
    },
  };
}
