// Example JSON Schemas for the Extract tab: what a person would ask of a document image.

export const EXAMPLE_SCHEMAS = {
  Invoice: {
    type: "object",
    properties: {
      invoice_number: { type: "string", description: "The invoice's number" },
      issue_date: { type: "string", description: "Date of issue, YYYY-MM-DD" },
      seller: { type: "string" },
      buyer: { type: "string" },
      currency: { type: "string", description: "ISO 4217 code, e.g. EUR" },
      items: {
        type: "array",
        items: {
          type: "object",
          properties: {
            description: { type: "string" },
            quantity: { type: "number" },
            unit_price: { type: "number" },
            amount: { type: "number" },
          },
          required: ["description", "amount"],
        },
      },
      total: { type: "number", description: "Total to pay, taxes included" },
    },
    required: ["invoice_number", "total"],
  },
  "ID card": {
    type: "object",
    properties: {
      full_name: { type: "string" },
      document_number: { type: "string" },
      date_of_birth: { type: "string", description: "YYYY-MM-DD" },
      nationality: { type: "string" },
      expiry_date: { type: "string", description: "YYYY-MM-DD" },
    },
    required: ["full_name", "document_number"],
  },
};
