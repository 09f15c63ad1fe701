import type { BeforeRequestMiddleware } from 'zapier-platform-core';
import { basicAuthHeader } from '../../shared/target/saasquatch-api.js';
import { connectionSettings } from './target.js';

const originOf = (url: string): string | null => {
  try {
    return new URL(url).origin;
  } catch {
    return null;
  }
};

/**
 * Adds the SaaSquatch Basic-auth header to `z.request` calls that lack one (any made outside the target client).
 * Requests from the target client already carry the same header, built by the same function from the same key, so they are left as they are
 * rather than given a second Authorization header. Only requests to the connection's own API origin get the key.
 */
export const addBasicAuth: BeforeRequestMiddleware = (request, _z, bundle) => {
  const settings = connectionSettings(bundle.authData);
  if (settings.apiKey === '') return request;
  const headers = request.headers ?? {};
  if (Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) return request;
  const origin = originOf(request.url);
  if (origin === null || origin !== originOf(settings.baseUrl)) return request;
  request.headers = { ...headers, authorization: basicAuthHeader(settings.apiKey) };
  return request;
};
