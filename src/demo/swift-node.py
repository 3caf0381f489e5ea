#!/usr/bin/python3
"""A single-node OpenStack Swift on 127.0.0.1, for objmount's tests and benchmarks.

Usage: swift-node.py DIR [--keystone]

Builds one-replica rings and the servers' configuration in DIR, starts memcached (tempauth keeps
its tokens there), the account, container and object servers and the proxy (tempauth, v1 auth,
SLO, DLO, bulk, copy), each a plain process on a port the kernel picked, checks each answers its
healthcheck, and prints one line of JSON to stdout: {"proxy": PORT, "memcached": PORT}. It then
waits until its standard input closes (the parent ended, whatever the way) or SIGTERM, and stops
every server.

With --keystone it also runs Keystone (Debian's python3-keystone: sqlite, fernet tokens, a
templated catalog naming the second proxy below as the object-store endpoint of RegionOne,
bootstrapped with admin/admin-password in the project admin) and a second proxy that takes
Keystone tokens (authtoken + keystoneauth, operator roles admin and member); the JSON line then
also has "keystone" and "keystoneProxy". Keystone's set-up (db_sync, fernet_setup, bootstrap)
takes some 15 s of CPU, which is why the Keystone tests run apart (scripts/test-keystone).

Everything lives under DIR: configuration, rings, the device (DIR/srv/d1), logs (DIR/*.log).
Swift keeps object metadata in user xattrs, so DIR must be on a file system that has them (ext4,
xfs, btrfs; tmpfs only from Linux 6.6): the check below says so in one line if not.

Swift's own scripts (swift-proxy-server...) read /etc/swift/swift.conf before their configuration
file; this runs the same entry point (swift.common.wsgi.run_wsgi) with SWIFT_CONF_FILE pointed at
DIR, so nothing outside DIR is read or written.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

SERVERS = ('account', 'container', 'object', 'proxy')

# Users of the tempauth realm: test:tester is the account's admin; test:reader only gets
# containers whose ACLs name it (a key restricted to one container, for pairing tests).
TEMPAUTH_USERS = """\
user_test_tester = testing .admin
user_test_reader = reading
"""


def die_with_parent():
    """Run in each child before it starts: the kernel sends it SIGTERM when this process dies."""
    import ctypes
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check_xattrs(directory):
    probe = os.path.join(directory, '.xattr-probe')
    with open(probe, 'w'):
        pass
    try:
        os.setxattr(probe, 'user.swift.probe', b'x' * 254)
    except OSError as error:
        sys.exit(f'swift-node: {directory} has no user xattrs ({error.strerror}), which Swift needs: '
                 'set TMPDIR to a directory on ext4, xfs or btrfs')
    finally:
        os.unlink(probe)


def build_rings(directory, ports):
    from swift.common.ring import RingBuilder
    for kind in ('account', 'container', 'object'):
        builder = RingBuilder(6, 1, 0)  # 64 partitions, one replica, no move delay
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': ports[kind],
                         'device': 'd1', 'weight': 100, 'meta': ''})
        builder.rebalance()
        builder.get_ring().save(os.path.join(directory, f'{kind}.ring.gz'))


def write_configs(directory, ports):
    with open(os.path.join(directory, 'swift.conf'), 'w') as f:
        f.write('[swift-hash]\nswift_hash_path_suffix = objmount-test\n\n'
                '[storage-policy:0]\nname = Policy-0\ndefault = yes\n')
    common = (f'[DEFAULT]\nbind_ip = 127.0.0.1\nworkers = 0\nswift_dir = {directory}\n'
              f'devices = {directory}/srv\nmount_check = false\nlog_level = WARNING\n'
              'disable_fallocate = true\n')
    for kind in ('account', 'container', 'object'):
        with open(os.path.join(directory, f'{kind}-server.conf'), 'w') as f:
            f.write(f'{common}bind_port = {ports[kind]}\n\n'
                    f'[pipeline:main]\npipeline = healthcheck {kind}-server\n\n'
                    f'[app:{kind}-server]\nuse = egg:swift#{kind}\n\n'
                    '[filter:healthcheck]\nuse = egg:swift#healthcheck\n')
    pipeline = ('catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk '
                'tempurl tempauth copy slo dlo proxy-logging proxy-server')
    with open(os.path.join(directory, 'proxy-server.conf'), 'w') as f:
        f.write(f'{common}bind_port = {ports["proxy"]}\n\n'
                f'[pipeline:main]\npipeline = {pipeline}\n\n'
                '[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n'
                'allow_account_management = true\n\n'
                f'[filter:tempauth]\nuse = egg:swift#tempauth\n{TEMPAUTH_USERS}\n'
                f'[filter:cache]\nuse = egg:swift#memcache\nmemcache_servers = 127.0.0.1:{ports["memcached"]}\n\n'
                + ''.join(f'[filter:{name}]\nuse = egg:swift#{egg}\n\n' for name, egg in (
                    ('catch_errors', 'catch_errors'), ('gatekeeper', 'gatekeeper'),
                    ('healthcheck', 'healthcheck'), ('proxy-logging', 'proxy_logging'),
                    ('listing_formats', 'listing_formats'), ('bulk', 'bulk'),
                    ('tempurl', 'tempurl'), ('copy', 'copy'), ('slo', 'slo'), ('dlo', 'dlo'))))


KEYSTONE_ADMIN_PASSWORD = 'admin-password'


def write_keystone_configs(directory, ports):
    keystone = os.path.join(directory, 'keystone')
    for sub in ('fernet', 'credential'):
        os.makedirs(os.path.join(keystone, sub), exist_ok=True)
    with open(os.path.join(keystone, 'keystone.conf'), 'w') as f:
        f.write(f'[DEFAULT]\nuse_stderr = true\n\n[database]\nconnection = sqlite:///{keystone}/keystone.db\n\n'
                '[token]\nprovider = fernet\nexpiration = 3600\n\n'
                f'[fernet_tokens]\nkey_repository = {keystone}/fernet\n\n'
                f'[credential]\nkey_repository = {keystone}/credential\n\n'
                f'[catalog]\ndriver = templated\ntemplate_file = {keystone}/catalog.templates\n')
    swift_url = f'http://127.0.0.1:{ports["keystone-proxy"]}/v1/AUTH_$(tenant_id)s'
    with open(os.path.join(keystone, 'catalog.templates'), 'w') as f:
        # authtoken finds Keystone through the internal identity endpoint.
        f.write(f'catalog.RegionOne.identity.publicURL = http://127.0.0.1:{ports["keystone"]}/v3\n'
                f'catalog.RegionOne.identity.internalURL = http://127.0.0.1:{ports["keystone"]}/v3\n'
                'catalog.RegionOne.identity.name = Identity\n'
                f'catalog.RegionOne.object-store.publicURL = {swift_url}\n'
                f'catalog.RegionOne.object-store.internalURL = {swift_url}\n'
                'catalog.RegionOne.object-store.name = Swift\n')
    auth_url = f'http://127.0.0.1:{ports["keystone"]}/v3'
    with open(os.path.join(directory, 'proxy-server.conf')) as f:
        proxy = f.read()
    proxy = (proxy.replace(f'bind_port = {ports["proxy"]}', f'bind_port = {ports["keystone-proxy"]}')
             .replace(' tempauth ', ' authtoken keystoneauth ')
             + f'[filter:authtoken]\npaste.filter_factory = keystonemiddleware.auth_token:filter_factory\n'
               f'www_authenticate_uri = {auth_url}\nauth_url = {auth_url}\nauth_type = password\n'
               'project_domain_name = Default\nuser_domain_name = Default\nproject_name = admin\n'
               f'username = admin\npassword = {KEYSTONE_ADMIN_PASSWORD}\ndelay_auth_decision = True\n'
               f'memcached_servers = 127.0.0.1:{ports["memcached"]}\n\n'
               '[filter:keystoneauth]\nuse = egg:swift#keystoneauth\noperator_roles = admin, member\n')
    with open(os.path.join(directory, 'keystone-proxy-server.conf'), 'w') as f:
        f.write(proxy)


def set_up_keystone(directory):
    """keystone-manage's three steps, one after the other (each is its own process)."""
    keystone = os.path.join(directory, 'keystone')
    manage = ['keystone-manage', '--config-file', os.path.join(keystone, 'keystone.conf')]
    user = ['--keystone-user', str(os.getuid()), '--keystone-group', str(os.getgid())]
    with open(os.path.join(keystone, 'manage.log'), 'w') as log:
        for step in (['db_sync'], ['fernet_setup', *user], ['credential_setup', *user],
                     ['bootstrap', '--bootstrap-password', KEYSTONE_ADMIN_PASSWORD, '--bootstrap-username', 'admin',
                      '--bootstrap-project-name', 'admin', '--bootstrap-role-name', 'admin',
                      '--bootstrap-region-id', 'RegionOne']):
            if subprocess.run([*manage, *step], stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=keystone).returncode != 0:
                raise RuntimeError(f'keystone-manage {step[0]} failed (log: {keystone}/manage.log)')


def serve(directory, kind):
    """The body of one server process: Swift's run_wsgi, with swift.conf taken from DIR."""
    if kind == 'proxy':
        # Only the proxy reads the rings; building them here spares the parent importing Swift.
        with open(os.path.join(directory, 'ports.json')) as f:
            build_rings(directory, json.load(f))
    from swift.common import utils
    utils.SWIFT_CONF_FILE = os.path.join(directory, 'swift.conf')
    from swift.common.wsgi import run_wsgi
    section = 'proxy-server' if kind.endswith('proxy') else f'{kind}-server'
    sys.exit(run_wsgi(os.path.join(directory, f'{kind}-server.conf'), section, verbose=True))


def wait_healthy(port, process, what, deadline, path='/healthcheck'):
    while True:
        if process.poll() is not None:
            raise RuntimeError(f'{what} exited with code {process.returncode}')
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}{path}', timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f'{what} did not answer on port {port} in time')
        time.sleep(0.05)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == 'serve':
        serve(sys.argv[2], sys.argv[3])
        return
    with_keystone = sys.argv[2:] == ['--keystone']
    if len(sys.argv) != 2 and not with_keystone:
        sys.exit('usage: swift-node.py DIR [--keystone]')
    directory = os.path.abspath(sys.argv[1])
    os.makedirs(os.path.join(directory, 'srv', 'd1'), exist_ok=True)
    check_xattrs(os.path.join(directory, 'srv', 'd1'))
    ports = {name: free_port() for name in (*SERVERS, 'memcached', *(('keystone', 'keystone-proxy') if with_keystone else ()))}
    with open(os.path.join(directory, 'ports.json'), 'w') as f:
        json.dump(ports, f)
    write_configs(directory, ports)
    if with_keystone:
        write_keystone_configs(directory, ports)
    # eventlet's green DNS (dnspython) doubles each server's start-up, and only 127.0.0.1 is used.
    environment = {**os.environ, 'EVENTLET_NO_GREENDNS': 'yes'}

    children = []

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        log = open(os.path.join(directory, 'memcached.log'), 'w')
        children.append(subprocess.Popen(['memcached', '-l', '127.0.0.1', '-p', str(ports['memcached']), '-U', '0', '-m', '64',
                                          *(['-u', 'root'] if os.getuid() == 0 else [])],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent))
        started = {}
        for kind in SERVERS:
            log = open(os.path.join(directory, f'{kind}.log'), 'w')
            started[kind] = subprocess.Popen([sys.executable, __file__, 'serve', directory, kind],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment,
                                             preexec_fn=die_with_parent)
            children.append(started[kind])
        if with_keystone:
            set_up_keystone(directory)
            log = open(os.path.join(directory, 'keystone', 'server.log'), 'w')
            keystone_env = {**environment, 'OS_KEYSTONE_CONFIG_FILES': os.path.join(directory, 'keystone', 'keystone.conf')}
            started['keystone'] = subprocess.Popen(['keystone-wsgi-public', '--host', '127.0.0.1', '--port', str(ports['keystone'])],
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=keystone_env,
                                                   cwd=os.path.join(directory, 'keystone'), preexec_fn=die_with_parent)
            children.append(started['keystone'])
        deadline = time.monotonic() + 300
        for kind in SERVERS:
            wait_healthy(ports[kind], started[kind], f'swift {kind} server (log: {directory}/{kind}.log)', deadline)
        if with_keystone:
            # The proxy has built the rings this one reads.
            log = open(os.path.join(directory, 'keystone-proxy.log'), 'w')
            started['keystone-proxy'] = subprocess.Popen([sys.executable, __file__, 'serve', directory, 'keystone-proxy'],
                                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment,
                                                         preexec_fn=die_with_parent)
            children.append(started['keystone-proxy'])
            wait_healthy(ports['keystone'], started['keystone'], f'keystone (log: {directory}/keystone/server.log)', deadline, '/v3')
            wait_healthy(ports['keystone-proxy'], started['keystone-proxy'], f'the Keystone proxy (log: {directory}/keystone-proxy.log)', deadline)
    except Exception as error:  # noqa: BLE001 - any failure to start is reported in one line
        print(f'swift-node: {error}', file=sys.stderr)
        stop()
    answer = {'proxy': ports['proxy'], 'memcached': ports['memcached']}
    if with_keystone:
        answer.update(keystone=ports['keystone'], keystoneProxy=ports['keystone-proxy'])
    print(json.dumps(answer), flush=True)
    # Until the parent goes away: its end of stdin closes however it ends.
    threading.Thread(target=lambda: (sys.stdin.read(), stop()), daemon=True).start()
    while True:
        signal.pause()


if __name__ == '__main__':
    main()
