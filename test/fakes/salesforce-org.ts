// Tests drive the product's fake org; jsforce sends even loopback requests through a proxy when one is set.
import './no-proxy.js';

export * from '../../connectors/salesforce/fake-org.js';
