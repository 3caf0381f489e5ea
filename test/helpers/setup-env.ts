// Tests run on a closed network: never let the AWS SDK probe the EC2 instance-metadata address.
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
