terraform {
  # terraform_data needs 1.4; no provider: the module only runs local
  # commands, so it plans and applies without any download.
  required_version = ">= 1.4"
}
