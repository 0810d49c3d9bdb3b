//! Ensures an instance's media bucket on an S3-compatible store through `aws-sdk-s3`.
