/**
 * `lb_kind NAT`: accepted for IPv4 TCP services, with or without a
 * local_address_group; what NAT cannot do (SYNPROXY, PROXY protocol, UDP,
 * IPv6) refused at its line; a reload that changes the method replaces the
 * service.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, diffConfig, parseConfig } from '../../src/control/config/index.js';

const NAT = `virtual_server 10.10.1.100 80 {
    lb_kind NAT
    real_server 10.10.2.2 8080 {
        weight 1
    }
}
`;

function refused(text: string, line: number, reason: RegExp): void {
  assert.throws(
    () => parseConfig(text, 'nat.conf'),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.equal(e.line, line, e.message);
      assert.match(e.reason, reason);
      return true;
    },
  );
}

describe('config: lb_kind NAT', () => {
  it('a NAT service needs no local_address_group', () => {
    const cfg = parseConfig(NAT, 'nat.conf');
    assert.equal(cfg.services.length, 1);
    assert.equal(cfg.services[0]!.forwarding, 'nat');
    assert.deepEqual(cfg.services[0]!.laddrs, []);
    // lvs_method is keepalived's other spelling.
    const alt = parseConfig(NAT.replace('lb_kind NAT', 'lvs_method NAT'), 'nat.conf');
    assert.equal(alt.services[0]!.forwarding, 'nat');
  });

  it('FNAT stays the default, and still needs its group', () => {
    refused(
      NAT.replace('    lb_kind NAT\n', ''),
      1,
      /needs 'laddr_group_name' \(FULLNAT sends LB->RS traffic from a local address group\)/,
    );
  });

  it('what NAT cannot do is refused at its line', () => {
    refused(
      NAT.replace('lb_kind NAT', 'lb_kind NAT\n    syn_proxy'),
      3,
      /'syn_proxy' needs FULLNAT: virtual_server .* is lb_kind NAT \(nat.conf:2\)/,
    );
    refused(
      NAT.replace('lb_kind NAT', 'lb_kind NAT\n    proxy_protocol v2'),
      3,
      /'proxy_protocol' needs FULLNAT/,
    );
    refused(
      NAT.replace('lb_kind NAT', 'lb_kind NAT\n    protocol UDP'),
      2,
      /lb_kind NAT is for TCP services/,
    );
    refused(
      NAT.replace('10.10.1.100 80', '2001:db8::100 80').replace(
        '10.10.2.2 8080',
        '2001:db8::2 8080',
      ),
      2,
      /lb_kind NAT is for IPv4 services/,
    );
  });

  it('a reload that changes lb_kind replaces the service', () => {
    const fnat = `local_address_group g { 10.10.3.1 }\n${NAT.replace('lb_kind NAT', 'laddr_group_name g')}`;
    const d = diffConfig(parseConfig(fnat, 'a.conf'), parseConfig(NAT, 'b.conf'));
    assert.equal(d.removedServices.length, 1);
    assert.equal(d.removedServices[0]!.forwarding, 'fnat');
    assert.equal(d.addedServices.length, 1);
    assert.equal(d.addedServices[0]!.forwarding, 'nat');
    assert.equal(d.changedServices.length, 0);
  });
});
