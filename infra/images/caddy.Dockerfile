# Caddy as uid 10004 with no capabilities at all.
FROM caddy:2.10.2-alpine
# The upstream binary carries cap_net_bind_service as a file capability, and the kernel refuses
# to start such a binary once every capability is dropped (EPERM). A plain copy carries none;
# none is needed, as Caddy listens on 8080 and 8443 inside the container.
# Its state goes to /var/lib/caddy (certificates, ACME account) instead of the image's /data
# and /config, which are root-owned volumes.
RUN cp /usr/bin/caddy /usr/bin/caddy.copy && mv /usr/bin/caddy.copy /usr/bin/caddy \
    && mkdir -p /var/lib/caddy && chown 10004:10004 /var/lib/caddy && chmod 0700 /var/lib/caddy
ENV XDG_DATA_HOME=/var/lib/caddy \
    XDG_CONFIG_HOME=/tmp
USER 10004:10004
