# A runner fleet in the customer's AWS account: an auto-scaling group of
# instances from a launch template, in the given VPC subnets. The runners
# connect out only: the security group has no ingress rule. The instance
# role may read the fleet's bootstrap token from SSM Parameter Store and
# nothing else, so the token is never in user-data. The provider (region,
# credentials) is configured by the caller.

locals {
  name = "sluice-${var.fleet_name}"
  tags = merge(var.tags, {
    "sluice:fleet-id"   = var.fleet_id
    "sluice:fleet-name" = var.fleet_name
    "sluice:managed-by" = "sluice"
  })
  ami_id = var.ami_id != "" ? var.ami_id : data.aws_ssm_parameter.al2023[0].value
  kafka_args = join(" ", concat(
    ["--brokers", join(",", var.kafka_brokers)],
    var.kafka_tls ? ["--tls"] : [],
    var.kafka_sasl_mechanism != "" ? ["--sasl-mechanism", var.kafka_sasl_mechanism, "--sasl-user", var.kafka_sasl_user] : [],
  ))
}

data "aws_ssm_parameter" "al2023" {
  count = var.ami_id == "" ? 1 : 0
  name  = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

resource "aws_ssm_parameter" "bootstrap_token" {
  name        = "/sluice/fleets/${var.fleet_id}/bootstrap-token"
  description = "One-time token the fleet's runners register with (short-lived)."
  type        = "SecureString"
  # Destroy runs have no token: keep a placeholder, SSM refuses empty values.
  value = var.bootstrap_token != "" ? var.bootstrap_token : "none"
  tags  = local.tags
}

resource "aws_ssm_parameter" "sasl_password" {
  name        = "/sluice/fleets/${var.fleet_id}/sasl-password"
  description = "SASL password of the fleet's Kafka."
  type        = "SecureString"
  value       = var.kafka_sasl_password != "" ? var.kafka_sasl_password : "none"
  tags        = local.tags
}

resource "aws_security_group" "runner" {
  name_prefix = "${local.name}-"
  description = "Sluice runners of fleet ${var.fleet_name}: outbound only"
  vpc_id      = var.vpc_id
  tags        = local.tags

  # No ingress block: nothing may connect to a runner.
  egress {
    description = "The control plane (HTTPS), Kafka and DNS"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    cidr_blocks = var.egress_cidrs
  }

  lifecycle {
    create_before_destroy = true
  }
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# Least privilege: read this fleet's two parameters (SecureStrings under
# the AWS-managed aws/ssm key, which needs no KMS grant of its own).
data "aws_iam_policy_document" "runner" {
  statement {
    sid       = "ReadFleetSecrets"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.bootstrap_token.arn, aws_ssm_parameter.sasl_password.arn]
  }
}

resource "aws_iam_role" "runner" {
  name_prefix        = "${local.name}-"
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "runner" {
  name   = "read-fleet-secrets"
  role   = aws_iam_role.runner.id
  policy = data.aws_iam_policy_document.runner.json
}

resource "aws_iam_instance_profile" "runner" {
  name_prefix = "${local.name}-"
  role        = aws_iam_role.runner.name
  tags        = local.tags
}

resource "aws_launch_template" "runner" {
  name_prefix            = "${local.name}-"
  image_id               = local.ami_id
  instance_type          = var.instance_types[var.size]
  vpc_security_group_ids = [aws_security_group.runner.id]
  update_default_version = true
  tags                   = local.tags

  iam_instance_profile {
    arn = aws_iam_instance_profile.runner.arn
  }

  # IMDSv2 only, one hop: containers on the instance cannot reach it.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = var.volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  user_data = base64encode(templatefile("${path.module}/user-data.sh.tftpl", {
    control_plane_url = var.control_plane_url
    download_url      = replace(var.runner_download_url, "{version}", var.runner_version)
    runner_version    = var.runner_version
    kafka_args        = local.kafka_args
    token_parameter   = aws_ssm_parameter.bootstrap_token.name
    sasl_parameter    = aws_ssm_parameter.sasl_password.name
  }))

  tag_specifications {
    resource_type = "instance"
    tags          = local.tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = local.tags
  }
}

resource "aws_autoscaling_group" "runner" {
  name_prefix         = "${local.name}-"
  min_size            = var.runner_count
  max_size            = var.runner_count
  desired_capacity    = var.runner_count
  vpc_zone_identifier = var.subnet_ids
  health_check_type   = "EC2"

  launch_template {
    id      = aws_launch_template.runner.id
    version = aws_launch_template.runner.latest_version
  }

  # A new runner version is a new launch template version: replace the
  # instances a few at a time, keeping most of the fleet consuming.
  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
    }
  }

  dynamic "tag" {
    for_each = local.tags
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}
