# local-kms as uid 10003 (the upstream image runs as root): its key folder gets that owner, so
# the named volume mounted on it does too.
FROM nsmithuk/local-kms:3.11.7
RUN chown 10003:10003 /data && chmod 0700 /data
USER 10003:10003
