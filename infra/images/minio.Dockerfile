# MinIO as uid 10002. The upstream image runs as root and declares /data a volume, so a named
# volume there is owned by root; this folder is ours, created with the owner the server runs as.
FROM minio/minio:RELEASE.2025-09-07T16-13-09Z
RUN mkdir -p /var/lib/minio && chown 10002:10002 /var/lib/minio && chmod 0700 /var/lib/minio
USER 10002:10002
