// Config fragments shared by the e2e tests.

// One model_list entry: deployment `id` of model group `group` on the mock upstream `mock`
// (anything with a baseURL), with extra litellm_params given as { key: value }.
export function dep(group, id, mock, params = {}) {
  const extra = Object.entries(params)
    .map(([k, v]) => `      ${k}: ${JSON.stringify(v)}\n`)
    .join('');
  return `  - model_name: ${group}
    litellm_params:
      model: openai/up-${id}
      api_base: ${mock.baseURL}
      api_key: sk-upstream-${id}
${extra}    model_info:
      id: ${id}
`;
}

// model_list with one model group "priced" on the mock, at the given prices per token.
export function pricedModelList(mock, inCost, outCost) {
  return `model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      api_base: ${mock.baseURL}
      api_key: sk-upstream-test
      input_cost_per_token: ${inCost}
      output_cost_per_token: ${outCost}
`;
}
