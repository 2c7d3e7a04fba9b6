//! ACM: the Certificates port (what provision checks before an HTTPS listener uses a certificate).

use async_trait::async_trait;

use release_core::model::error::Cause;
use release_core::ports::{Certificate, Certificates};
use release_core::Result;

use crate::error::sdk;
use crate::Aws;

#[async_trait]
impl Certificates for Aws {
    async fn certificate(&self, arn: &str) -> Result<Option<Certificate>> {
        let out = match self.acm.describe_certificate().certificate_arn(arn).send().await {
            Ok(out) => out,
            Err(e) => {
                let err = sdk("acm DescribeCertificate", e);
                return if err.is(Cause::Missing) { Ok(None) } else { Err(err) };
            }
        };
        let Some(c) = out.certificate() else { return Ok(None) };
        let mut names: Vec<String> = c.domain_name().map(str::to_owned).into_iter().collect();
        names.extend(c.subject_alternative_names().iter().filter(|n| !names.contains(n)).cloned().collect::<Vec<_>>());
        Ok(Some(Certificate { arn: arn.to_owned(), status: c.status().map(|s| s.as_str().to_owned()).unwrap_or_default(), names }))
    }
}
