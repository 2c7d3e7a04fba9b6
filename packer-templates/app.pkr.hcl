# Bakes one AMI for one app at one commit.
#
# Real AWS:  packer build -only=amazon-ebs.aws      -var app=... app.pkr.hcl
# Emulator:  packer build -only=amazon-ebs.emulator -var ec2_endpoint=http://127.0.0.1:4566 ... app.pkr.hcl
#
# Always pass -only: without it both sources run, and amazon-ebs.aws goes to real AWS.
# An -only that matches no source (e.g. -only=emulator) builds nothing and exits 0.
# The emulator source has no communicator, so no provisioner runs there: it only
# exercises RunInstances -> StopInstances -> CreateImage -> TerminateInstances.
# Packer 1.6.6 rejects a -var whose variable is not declared here
# ("Undefined -var variable"), so the caller must pass only the variables below.
# Credentials come from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).

variable "app" {
  type        = string
  description = "App name; the app is installed under /opt/<app> and runs as systemd unit <app>.service."
}

variable "commit" {
  type        = string
  description = "Commit the artifact was built from; recorded as a tag on the AMI."
}

variable "artifact" {
  type        = string
  description = "Path on the local machine of the app's tarball (.tar.gz), unpacked into /opt/<app>."
}

variable "base_ami" {
  type        = string
  description = "Resolved id (ami-...) of the image to build on."
}

variable "instance_type" {
  type    = string
  default = "t3.micro"
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "ec2_endpoint" {
  type        = string
  default     = ""
  description = "EC2 endpoint of the emulator, used only by the emulator source; empty there means http://127.0.0.1:4566."

  # The emulator source must never reach a real endpoint: only loopback URLs pass.
  # (Packer 1.6.6 offers no regex function in validation conditions, hence substr/split.)
  validation {
    condition     = var.ec2_endpoint == "" || ((substr(var.ec2_endpoint, 0, 17) == "http://127.0.0.1:" || substr(var.ec2_endpoint, 0, 17) == "http://localhost:") && length(split("@", var.ec2_endpoint)) == 1 && length(split("/", var.ec2_endpoint)) <= 4)
    error_message = "The ec2_endpoint value must be empty or a loopback URL with a port, such as http://127.0.0.1:4566."
  }
}

variable "ami_name" {
  type        = string
  description = "Full name of the AMI to create (computed by the caller; must be unique in the account and region)."
}

variable "ssh_username" {
  type    = string
  default = "ec2-user"
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the builder instance on AWS; empty means the default VPC's."
}

variable "exec_start" {
  type        = string
  default     = ""
  description = "Command line of the service; empty means /opt/<app>/bin/<app>."
}

locals {
  app_dir    = "/opt/${var.app}"
  env_file   = "/etc/${var.app}/env"
  exec_start = var.exec_start != "" ? var.exec_start : "/opt/${var.app}/bin/${var.app}"
  tags = {
    Name   = var.ami_name
    app    = var.app
    commit = var.commit
  }
  run_tags = {
    Name   = "packer-builder ${var.ami_name}"
    app    = var.app
    commit = var.commit
  }
}

source "amazon-ebs" "aws" {
  region        = var.region
  source_ami    = var.base_ami
  instance_type = var.instance_type
  ami_name      = var.ami_name
  communicator  = "ssh"
  ssh_username  = var.ssh_username
  subnet_id     = var.subnet_id
  tags          = local.tags
  snapshot_tags = local.tags
  run_tags      = local.run_tags
}

source "amazon-ebs" "emulator" {
  region              = var.region
  source_ami          = var.base_ami
  instance_type       = var.instance_type
  ami_name            = var.ami_name
  communicator        = "none"
  custom_endpoint_ec2 = var.ec2_endpoint != "" ? var.ec2_endpoint : "http://127.0.0.1:4566"
  # Belt and braces: with credentials in the environment Packer 1.6.6 sends every
  # call (DescribeRegions too) to custom_endpoint_ec2 even without these three.
  # Without credentials it asks 169.254.169.254 whatever skip_metadata_api_check says.
  skip_credential_validation = true
  skip_metadata_api_check    = true
  skip_region_validation     = true
  tags                       = local.tags
  snapshot_tags              = local.tags
  run_tags                   = local.run_tags
}

build {
  sources = ["source.amazon-ebs.aws", "source.amazon-ebs.emulator"]

  provisioner "file" {
    only        = ["amazon-ebs.aws"]
    source      = var.artifact
    destination = "/tmp/${var.app}.tar.gz"
  }

  provisioner "shell" {
    only = ["amazon-ebs.aws"]
    inline = [
      "set -eu",
      "id -u ${var.app} >/dev/null 2>&1 || sudo useradd --system --no-create-home --home-dir ${local.app_dir} --shell /sbin/nologin ${var.app}",
      "sudo mkdir -p ${local.app_dir} /etc/${var.app}",
      "sudo tar -xzf /tmp/${var.app}.tar.gz --no-same-owner -C ${local.app_dir}",
      "rm -f /tmp/${var.app}.tar.gz",
      "echo '${var.commit}' | sudo tee ${local.app_dir}/COMMIT >/dev/null",
      "printf '%s\\n' '[Unit]' 'Description=${var.app} (${var.commit})' 'After=network-online.target' 'Wants=network-online.target' 'ConditionPathExists=${local.env_file}' '' '[Service]' 'User=${var.app}' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'EnvironmentFile=${local.env_file}' 'WorkingDirectory=${local.app_dir}' 'ExecStart=${local.exec_start}' 'Restart=always' 'RestartSec=2' '' '[Install]' 'WantedBy=multi-user.target' | sudo tee /etc/systemd/system/${var.app}.service >/dev/null",
      "sudo systemctl daemon-reload",
      "sudo systemctl enable ${var.app}.service",
    ]
  }
}
