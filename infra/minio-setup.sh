#!/bin/sh
# One-shot MinIO bootstrap (the `minio-setup` service): the bucket with versioning, and the
# application's own user, limited to that bucket. Safe to run again.
set -eu

mc mb --ignore-existing "minio/${BUCKET}"
# Versioning keeps an overwritten or deleted object recoverable for operators. Retention still
# deletes for good: S3BlobStore.delete removes every version and delete marker of a key.
# No object lock: a locked version cannot be deleted before its date, which would break
# erasure (Art. 17) and the deletion that follows crypto-shredding.
mc version enable "minio/${BUCKET}"

policy=/tmp/medvault-policy.json
cat >"$policy" <<POLICY
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions",
                 "s3:ListBucketMultipartUploads"],
      "Resource": ["arn:aws:s3:::${BUCKET}"]
    },
    {
      "Effect": "Allow",
      "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
                 "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
                 "s3:ListMultipartUploadParts"],
      "Resource": ["arn:aws:s3:::${BUCKET}/*"]
    }
  ]
}
POLICY
mc admin policy create minio medvault-app "$policy"
mc admin user add minio "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" >/dev/null
if ! mc admin user info minio "$S3_ACCESS_KEY_ID" | grep -q medvault-app; then
    mc admin policy attach minio medvault-app --user "$S3_ACCESS_KEY_ID"
fi
echo "minio-setup: bucket ${BUCKET} (versioned) and the application's user are ready"
