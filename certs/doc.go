// Package certs provides the TLS serving certificate of Palisade's admission
// webhook. The API server calls the webhook over TLS and verifies it against
// the caBundle of the webhook configurations, and the webhook fails closed:
// a certificate served before its CA is in that bundle blocks every governed
// admission. So the certificate, the Secret that stores it, the bundle and
// the files the TLS server loads have to move in a fixed order, which this
// package owns.
//
// Three modes:
//
//   - Self-managed (Manager, the default): a CA and a serving certificate
//     generated in-process into one Secret, the CA bundle injected into both
//     webhook configurations, rotated well before expiry, written to a
//     certificate directory that controller-runtime's certwatcher reloads.
//     The Secret is owned by the webhook Service, so that deleting the
//     Service (uninstalling the chart) lets the garbage collector delete it.
//   - cert-manager (CertManagerObjects, CAInjectionAnnotations): the
//     Issuer/Certificate chain and the cainjector annotation, for the chart.
//   - Bring your own Secret (Provided): the user's Secret is checked and
//     written to the certificate directory, or refused with the reason.
package certs
