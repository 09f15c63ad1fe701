/**
 * Imported first by tests that use jsforce or faye: jsforce reads the proxy variables when it is loaded and sends
 * every request, loopback included, through the proxy (it ignores NO_PROXY); faye reads them too.
 */
for (const name of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) delete process.env[name];
