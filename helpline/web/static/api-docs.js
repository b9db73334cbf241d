// Starts Swagger UI on /docs with the schema this server serves. Classic script (the bundle defines a
// global). validatorUrl: null, or Swagger UI would send the schema to an outside validator for a badge.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  showExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
