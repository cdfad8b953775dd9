"""Local mode: read template.yaml and play the AWS-managed glue around the handlers offline."""
