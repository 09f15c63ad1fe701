import {
  buildSchema,
  type DocumentNode,
  type ExecutionResult,
  execute,
  GraphQLError,
  type GraphQLScalarType,
  Kind,
  parse,
  validate,
} from 'graphql';
import type { FieldIssue } from '../../shared/errors.js';
import { jsonReply, type Reply } from '../http.js';
import { apiErrors, type SandboxApiError } from './api-error.js';
import { isJsonContentType, parseJsonBody } from './http-io.js';
import type { TenantState } from './state.js';
import { type LogResult, logUserEvent, noteCarriedKey, type UserEventResultBody } from './user-events.js';

/**
 * The user-event part of SaaSquatch's GraphQL SDL (saasquatch-docs `src/graphql/schema.ts`), plus
 * `idempotencyKey` (documented by the idempotency guide) and `apiErrorCode` on ApiError.
 */
export const SANDBOX_SDL = /* GraphQL */ `
  "Milliseconds since the epoch."
  scalar RSDate
  "Any JSON value."
  scalar RSJsonNode

  input UserEventDataInput {
    id: ID @deprecated(reason: "ignored")
    key: String!
    fields: RSJsonNode
    dateTriggered: RSDate
  }

  input UserEventInput {
    userId: String!
    accountId: String!
    idempotencyKey: String
    events: [UserEventDataInput!]
  }

  type User {
    id: String!
    accountId: String!
    email: String
    firstName: String
    lastName: String
    imageUrl: String
    locale: String
    customFields: RSJsonNode
    dateCreated: RSDate
    dateModified: RSDate
  }

  type UserEventData {
    id: ID!
    userId: String!
    accountId: String!
    key: String!
    fields: RSJsonNode
    dateTriggered: RSDate
    dateReceived: RSDate
    dateProcessed: RSDate
  }

  type UserEventResult {
    userId: String!
    accountId: String!
    user: User
    events: [UserEventData!]!
  }

  type ApiError {
    message: String!
    statusCode: Int!
    rsCode: String
    apiErrorCode: String
  }

  union BulkUserEventResult = UserEventResult | ApiError

  type Query {
    "Validates an input and answers as logUserEvent would, without recording it or using its key."
    previewUserEvent(userEventInput: UserEventInput!): UserEventResult!
  }

  type Mutation {
    logUserEvent(userEventInput: UserEventInput!): UserEventResult!
    logUserEvents(userEventInputs: [UserEventInput!]!): [BulkUserEventResult!]!
  }
`;

export const sandboxSchema = buildSchema(SANDBOX_SDL);

// RSDate must be a number: a string date is a type error (standard GraphQL error), not a 400 ApiError.
const rsDate = sandboxSchema.getType('RSDate') as GraphQLScalarType;
rsDate.parseValue = (value: unknown): number => {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  throw new TypeError(`RSDate must be epoch milliseconds (a number), got ${JSON.stringify(value) ?? typeof value}`);
};
rsDate.parseLiteral = (node): number => {
  if (node.kind === Kind.INT || node.kind === Kind.FLOAT) return Number(node.value);
  throw new TypeError('RSDate must be epoch milliseconds (a number literal)');
};

interface GraphqlContext {
  readonly tenant: TenantState;
  readonly now: number;
  readonly retentionMs: number;
  readonly strictUsers: boolean;
  /** Only count the keys the inputs carry (for requests an injected fault answers instead). */
  readonly dryRun: boolean;
}

export type GraphqlRequest = Omit<GraphqlContext, 'dryRun'>;

function apiErrorExtension(error: SandboxApiError): Record<string, unknown> {
  const { message, statusCode, apiErrorCode, rsCode, validationErrors } = error;
  return validationErrors === undefined
    ? { message, statusCode, apiErrorCode, rsCode }
    : { message, statusCode, apiErrorCode, rsCode, validationErrors };
}

function log(input: unknown, context: GraphqlContext, preview: boolean): LogResult {
  return logUserEvent(input, { ...context, via: 'graphql', preview });
}

function resultObject(result: UserEventResultBody, tenant: TenantState): Record<string, unknown> {
  const { userId, accountId } = result;
  return {
    __typename: 'UserEventResult',
    userId,
    accountId,
    // Resolved only when selected.
    user: () => tenant.user(accountId, userId)?.data ?? null,
    events: result.events.map((event) => ({ ...event, userId, accountId })),
  };
}

function single(input: unknown, context: GraphqlContext, preview: boolean): Record<string, unknown> {
  if (context.dryRun) {
    if (!preview) noteCarriedKey(context.tenant, input, context.now);
    throw new GraphQLError('dry run');
  }
  const outcome = log(input, context, preview);
  if (!outcome.ok) {
    throw new GraphQLError(outcome.error.message, {
      extensions: { classification: 'DataFetchingException', apiError: apiErrorExtension(outcome.error) },
    });
  }
  return resultObject(outcome.result, context.tenant);
}

// graphql-js's default resolver calls these with (args, context) when the root value is this object.
const rootValue = {
  logUserEvent: (args: { userEventInput: unknown }, context: GraphqlContext) => single(args.userEventInput, context, false),
  previewUserEvent: (args: { userEventInput: unknown }, context: GraphqlContext) => single(args.userEventInput, context, true),
  logUserEvents: (args: { userEventInputs: readonly unknown[] }, context: GraphqlContext) =>
    // Each item on its own, in input order; a failed item is an ApiError member of the union.
    args.userEventInputs.map((input) => {
      if (context.dryRun) {
        noteCarriedKey(context.tenant, input, context.now);
        return null;
      }
      const outcome = log(input, context, false);
      return outcome.ok ? resultObject(outcome.result, context.tenant) : { __typename: 'ApiError', ...apiErrorExtension(outcome.error) };
    }),
};

// Parsing and validating dominate small requests; clients send the same few documents over and over.
const MAX_CACHED_DOCUMENTS = 256;
const documents = new Map<string, DocumentNode | readonly GraphQLError[]>();

function documentFor(query: string): DocumentNode | readonly GraphQLError[] {
  const cached = documents.get(query);
  if (cached !== undefined) return cached;
  let outcome: DocumentNode | readonly GraphQLError[];
  try {
    const document = parse(query);
    const errors = validate(sandboxSchema, document);
    outcome = errors.length > 0 ? errors : document;
  } catch (error) {
    outcome = error instanceof GraphQLError ? [error] : [new GraphQLError(String(error))];
  }
  if (documents.size >= MAX_CACHED_DOCUMENTS) documents.clear();
  documents.set(query, outcome);
  return outcome;
}

interface GraphqlBody {
  readonly query: string;
  readonly variables: Readonly<Record<string, unknown>> | undefined;
  readonly operationName: string | undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** A failure of the whole request: HTTP status of the error, `errors` plus a top-level `extensions.apiError`. */
function envelope(error: SandboxApiError): Reply {
  return jsonReply(error.statusCode, { errors: [{ message: error.message }], extensions: { apiError: apiErrorExtension(error) } });
}

function readGraphqlBody(body: string, contentType: string | undefined): { ok: true; body: GraphqlBody } | { ok: false; reply: Reply } {
  if (!isJsonContentType(contentType)) return { ok: false, reply: envelope(apiErrors.wrongContentType(contentType)) };
  const parsed = parseJsonBody(body);
  if (!parsed.ok) return { ok: false, reply: envelope(apiErrors.invalidJson(parsed.detail)) };
  const value = parsed.value;
  const issues: FieldIssue[] = [];
  if (!isObject(value)) issues.push({ field: '(root)', reason: 'expected a JSON object {query, variables, operationName}' });
  else {
    if (typeof value.query !== 'string' || value.query.trim() === '')
      issues.push({ field: 'query', reason: 'required, a GraphQL document string' });
    if (value.variables != null && !isObject(value.variables)) issues.push({ field: 'variables', reason: 'expected an object' });
    if (value.operationName != null && typeof value.operationName !== 'string')
      issues.push({ field: 'operationName', reason: 'expected a string' });
  }
  if (issues.length > 0 || !isObject(value)) return { ok: false, reply: envelope(apiErrors.validation(issues)) };
  return {
    ok: true,
    body: {
      query: value.query as string,
      variables: isObject(value.variables) ? value.variables : undefined,
      operationName: typeof value.operationName === 'string' ? value.operationName : undefined,
    },
  };
}

async function run(body: GraphqlBody, document: DocumentNode, context: GraphqlContext): Promise<ExecutionResult> {
  return await execute({
    schema: sandboxSchema,
    document,
    rootValue,
    contextValue: context,
    variableValues: body.variables,
    operationName: body.operationName,
  });
}

/** `POST /api/v1/{tenant}/graphql`. Operation errors are HTTP 200 as GraphQL servers answer them. */
export async function handleGraphql(rawBody: string, contentType: string | undefined, request: GraphqlRequest): Promise<Reply> {
  const read = readGraphqlBody(rawBody, contentType);
  if (!read.ok) return read.reply;
  const document = documentFor(read.body.query);
  if (!('kind' in document)) return jsonReply(200, { errors: document });
  return jsonReply(200, await run(read.body, document, { ...request, dryRun: false }));
}

/** Counts the keys a GraphQL request carries without processing it, for requests a fault answers instead. */
export async function noteGraphqlKeys(rawBody: string, contentType: string | undefined, request: GraphqlRequest): Promise<void> {
  const read = readGraphqlBody(rawBody, contentType);
  if (!read.ok) return;
  const document = documentFor(read.body.query);
  if ('kind' in document) await run(read.body, document, { ...request, dryRun: true });
}
